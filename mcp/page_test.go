package mcp

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// fakeAPI serves n numbered objects in API pages of at most limit.
func fakeAPI(n int) fetchFunc[int] {
	return func(_ context.Context, cont, _ string, limit int64) ([]int, string, string, error) {
		start := 0
		if cont != "" {
			fmt.Sscanf(cont, "at-%d", &start)
		}
		var out []int
		for i := start; i < n && len(out) < int(limit); i++ {
			out = append(out, i)
		}
		next := ""
		if start+len(out) < n {
			next = fmt.Sprintf("at-%d", start+len(out))
		}
		return out, next, "1", nil
	}
}

func TestPaginateVisitsEveryObjectOnce(t *testing.T) {
	keepOdd := func(i *int) (string, bool) { return fmt.Sprintf("obj-%04d", *i), *i%2 == 1 }
	for _, tc := range []struct {
		name          string
		n, limit, cap int
	}{
		{"small pages", 1234, 7, 1 << 20},
		{"cut by bytes", 1234, 1000, 200},
		{"one API page", 40, 100, 1 << 20},
		{"empty", 0, 10, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]bool{}
			token, pages := "", 0
			for {
				p, err := paginate(context.Background(), fakeAPI(tc.n), keepOdd, tc.limit, tc.cap, token)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				if len(p.Items) > tc.limit {
					t.Fatalf("page of %d, limit %d", len(p.Items), tc.limit)
				}
				if size := wireSize(p.Items); size > tc.cap+20 {
					t.Fatalf("page of %d bytes, budget %d", size, tc.cap)
				}
				for _, it := range p.Items {
					if seen[it] {
						t.Fatalf("%s given twice", it)
					}
					seen[it] = true
				}
				if p.Continue == "" {
					break
				}
				if tc.cap < 1000 && !strings.Contains(p.Note, "continue") {
					t.Fatalf("a page cut by bytes says %q", p.Note)
				}
				token = p.Continue
				if pages > 10000 {
					t.Fatal("paging does not end")
				}
			}
			if len(seen) != tc.n/2 {
				t.Fatalf("saw %d objects, want %d", len(seen), tc.n/2)
			}
		})
	}
}

func TestPaginateRefusesForeignTokens(t *testing.T) {
	_, err := paginate(context.Background(), fakeAPI(3), func(i *int) (int, bool) { return *i, true }, 10, 1000, "not-a-token!")
	if err == nil || !strings.Contains(err.Error(), "argument continue") {
		t.Fatalf("error %v, want one naming the continue argument", err)
	}
}

// TestPaginateWithChangingLimits: a caller may ask for pages of other
// sizes as it goes; each object still comes once.
func TestPaginateWithChangingLimits(t *testing.T) {
	keep := func(i *int) (int, bool) { return *i, true }
	seen := map[int]bool{}
	token := ""
	for _, n := range []int{100, 10, 250, 3, 500, 500, 500} {
		p, err := paginate(context.Background(), fakeAPI(1200), keep, n, 1<<20, token)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Items {
			if seen[it] {
				t.Fatalf("object %d given twice (limit %d)", it, n)
			}
			seen[it] = true
		}
		if token = p.Continue; token == "" {
			break
		}
	}
	if len(seen) != 1200 {
		t.Fatalf("saw %d of 1200", len(seen))
	}
}
