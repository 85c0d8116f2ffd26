package scheduler

import "testing"

func TestFeasibleToFind(t *testing.T) {
	for _, tt := range []struct{ total, want int }{
		{1, 1}, {100, 100}, {101, 100}, {500, 230}, {1000, 420}, {5000, 500}, {20000, 1000},
	} {
		if got := feasibleToFind(tt.total); got != tt.want {
			t.Errorf("feasibleToFind(%d) = %d, want %d", tt.total, got, tt.want)
		}
	}
}
