package etcdsnapshot

import (
	"strings"
	"testing"
	"time"
)

func TestParseScheduleErrors(t *testing.T) {
	for _, spec := range []string{
		"", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *",
		"* * * 13 *", "* * * * 8", "5-1 * * * *", "*/0 * * * *", "*/x * * * *", "a * * * *",
		"@fortnightly", "@every", "@every 10ms", "@every soon", "1,,2 * * * *",
	} {
		if _, err := ParseSchedule(spec); err == nil {
			t.Errorf("ParseSchedule(%q) = nil error, want one", spec)
		}
	}
}

func TestScheduleNext(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse("2006-01-02 15:04 Mon", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		spec, from string
		want       []string
	}{
		// The default: midnight and noon.
		{DefaultSchedule, "2025-03-10 09:17 Mon", []string{"2025-03-10 12:00 Mon", "2025-03-11 00:00 Tue", "2025-03-11 12:00 Tue"}},
		// Strictly after: a time on the schedule is not its own next.
		{DefaultSchedule, "2025-03-10 12:00 Mon", []string{"2025-03-11 00:00 Tue"}},
		{"*/15 * * * *", "2025-03-10 09:17 Mon", []string{"2025-03-10 09:30 Mon", "2025-03-10 09:45 Mon", "2025-03-10 10:00 Mon"}},
		{"30 2 * * *", "2025-12-31 23:59 Wed", []string{"2026-01-01 02:30 Thu", "2026-01-02 02:30 Fri"}},
		{"0 0 29 2 *", "2025-03-01 00:00 Sat", []string{"2028-02-29 00:00 Tue"}},
		{"0 9 * * mon-fri", "2025-03-07 10:00 Fri", []string{"2025-03-10 09:00 Mon", "2025-03-11 09:00 Tue"}},
		// 7 is Sunday too.
		{"0 0 * * 7", "2025-03-10 00:00 Mon", []string{"2025-03-16 00:00 Sun"}},
		// Both day fields restricted: either matches (cron's rule).
		{"0 0 1 * sun", "2025-03-01 12:00 Sat", []string{"2025-03-02 00:00 Sun", "2025-03-09 00:00 Sun", "2025-03-16 00:00 Sun", "2025-03-23 00:00 Sun", "2025-03-30 00:00 Sun", "2025-04-01 00:00 Tue"}},
		// One restricted: both must match.
		{"0 0 * * sun", "2025-03-01 12:00 Sat", []string{"2025-03-02 00:00 Sun"}},
		{"0 0 1-7 * */7", "2025-03-01 12:00 Sat", []string{"2025-03-02 00:00 Sun", "2025-04-06 00:00 Sun"}},
		{"5,10-12/2 4 * jan,JUL *", "2025-03-01 12:00 Sat", []string{"2025-07-01 04:05 Tue", "2025-07-01 04:10 Tue", "2025-07-01 04:12 Tue", "2025-07-02 04:05 Wed"}},
		{"10/20 * * * *", "2025-03-01 12:00 Sat", []string{"2025-03-01 12:10 Sat", "2025-03-01 12:30 Sat", "2025-03-01 12:50 Sat", "2025-03-01 13:10 Sat"}},
		{"@hourly", "2025-03-01 12:59 Sat", []string{"2025-03-01 13:00 Sat"}},
		{"@daily", "2025-03-01 12:59 Sat", []string{"2025-03-02 00:00 Sun"}},
		{"@weekly", "2025-03-01 12:59 Sat", []string{"2025-03-02 00:00 Sun"}},
		{"@monthly", "2025-03-01 12:59 Sat", []string{"2025-04-01 00:00 Tue"}},
		{"@yearly", "2025-03-01 12:59 Sat", []string{"2026-01-01 00:00 Thu"}},
		{"@every 90m", "2025-03-01 12:59 Sat", []string{"2025-03-01 14:29 Sat", "2025-03-01 15:59 Sat"}},
	} {
		s, err := ParseSchedule(c.spec)
		if err != nil {
			t.Errorf("ParseSchedule(%q): %v", c.spec, err)
			continue
		}
		from := at(c.from)
		var got []string
		for range c.want {
			next, err := s.Next(from)
			if err != nil {
				t.Errorf("%q after %s: %v", c.spec, from, err)
				break
			}
			got = append(got, next.Format("2006-01-02 15:04 Mon"))
			from = next
		}
		if strings.Join(got, ", ") != strings.Join(c.want, ", ") {
			t.Errorf("%q from %s:\n got %v\nwant %v", c.spec, c.from, got, c.want)
		}
	}
}

func TestScheduleNextSeconds(t *testing.T) {
	s, _ := ParseSchedule("* * * * *")
	from := time.Date(2025, 3, 1, 12, 0, 59, 999, time.UTC)
	if got, _ := s.Next(from); !got.Equal(time.Date(2025, 3, 1, 12, 1, 0, 0, time.UTC)) {
		t.Errorf("Next(%v) = %v", from, got)
	}
}

func TestScheduleNever(t *testing.T) {
	s, err := ParseSchedule("0 0 30 2 *")
	if err != nil {
		t.Fatal(err)
	}
	if next, err := s.Next(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)); err == nil {
		t.Errorf("February 30th: Next = %v, want an error", next)
	}
}

func TestScheduleTimeZone(t *testing.T) {
	loc := time.FixedZone("UTC+5:30", 5*3600+1800)
	s, _ := ParseSchedule("0 */12 * * *")
	got, _ := s.Next(time.Date(2025, 3, 1, 11, 0, 0, 0, loc))
	if want := time.Date(2025, 3, 1, 12, 0, 0, 0, loc); !got.Equal(want) {
		t.Errorf("Next in %s = %v, want %v (the location's noon)", loc, got, want)
	}
}

// TestScheduleNextAcrossDaylightSaving: on the days a zone skips or
// repeats an hour, Next still moves forward and ends.
func TestScheduleNextAcrossDaylightSaving(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	for _, tc := range []struct {
		spec       string
		from, want time.Time
	}{
		// 2025-03-09 02:00 EST is 03:00 EDT.
		{"0 */12 * * *", time.Date(2025, 3, 9, 0, 0, 0, 0, ny), time.Date(2025, 3, 9, 12, 0, 0, 0, ny)},
		{"30 1 * * *", time.Date(2025, 3, 9, 1, 30, 0, 0, ny), time.Date(2025, 3, 10, 1, 30, 0, 0, ny)},
		{"30 2 * * *", time.Date(2025, 3, 8, 3, 0, 0, 0, ny), time.Date(2025, 3, 10, 2, 30, 0, 0, ny)},
		{"*/20 * * * *", time.Date(2025, 3, 9, 1, 50, 0, 0, ny), time.Date(2025, 3, 9, 3, 0, 0, 0, ny)},
		// 2025-11-02 02:00 EDT is 01:00 EST: the 01:xx hour comes twice.
		{"0 */12 * * *", time.Date(2025, 11, 2, 0, 0, 0, 0, ny), time.Date(2025, 11, 2, 12, 0, 0, 0, ny)},
		{"0 3 * * *", time.Date(2025, 11, 2, 0, 30, 0, 0, ny), time.Date(2025, 11, 2, 3, 0, 0, 0, ny)},
	} {
		s, err := ParseSchedule(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Next(tc.from)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%q after %s: %s %v, want %s", tc.spec, tc.from, got, err, tc.want)
		}
	}
	// Walking a whole year hour by hour never goes back nor stalls.
	s, _ := ParseSchedule("17 * * * *")
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, ny)
	for i := 0; i < 24*366; i++ {
		next, err := s.Next(at)
		if err != nil || !next.After(at) || next.Sub(at) > 2*time.Hour {
			t.Fatalf("after %s: %s %v", at, next, err)
		}
		at = next
	}
}
