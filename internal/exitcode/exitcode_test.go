package exitcode

import "testing"

func TestWorst(t *testing.T) {
	for _, c := range []struct {
		codes []int
		want  int
	}{
		{nil, OK},
		{[]int{0, 0}, OK},
		{[]int{0, 1, 0}, 1},
		{[]int{1, 5, 2}, 5},
		{[]int{5, JobFailed}, JobFailed},
		{[]int{JobFailed, Timeout, 1}, Timeout},
		{[]int{Timeout, SubmitRefused}, SubmitRefused},
		{[]int{SubmitRefused, Unreachable, 0}, Unreachable},
		{[]int{Unreachable, Terminated}, Terminated},
		{[]int{Terminated, Interrupted}, Interrupted},
		{[]int{PerfRegression, 1}, PerfRegression},
		{[]int{99, 1}, 1},  // an undocumented code ranks below pytest's
		{[]int{0, 99}, 99}, // but is never taken for a pass
	} {
		if got := Worst(c.codes); got != c.want {
			t.Errorf("Worst(%v) = %d, want %d", c.codes, got, c.want)
		}
	}
}
