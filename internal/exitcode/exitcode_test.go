package exitcode

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
)

func TestOf(t *testing.T) {
	base := errors.New("boom")
	cases := []struct {
		err  error
		want int
		user bool
	}{
		{nil, OK, false},
		{base, InternalFailure, false},
		{With(Unreachable, base), Unreachable, true},
		{fmt.Errorf("stage 4: %w", With(Unreachable, base)), Unreachable, true},
		{Withf(BadInput, "bad %s", "yaml"), BadInput, true},
		{Shown(Withf(JobFailed, "x")), JobFailed, true},
	}
	for i, c := range cases {
		if got := Of(c.err); got != c.want {
			t.Errorf("case %d: Of = %d, want %d", i, got, c.want)
		}
		if got := IsUserError(c.err); got != c.user {
			t.Errorf("case %d: IsUserError = %v, want %v", i, got, c.user)
		}
	}
	if With(BadInput, nil) != nil {
		t.Error("With(code, nil) must stay nil")
	}
	if !WasShown(fmt.Errorf("wrapped: %w", Shown(Withf(1, "x")))) || WasShown(Withf(1, "x")) {
		t.Error("Shown/WasShown")
	}
}

func TestForSignal(t *testing.T) {
	if ForSignal(syscall.SIGINT) != 130 || ForSignal(syscall.SIGTERM) != 143 {
		t.Errorf("SIGINT %d, SIGTERM %d", ForSignal(syscall.SIGINT), ForSignal(syscall.SIGTERM))
	}
}
