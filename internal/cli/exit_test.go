package cli

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/transport"
	"github.com/disagg-runner/disagg-runner/runner"
	"github.com/disagg-runner/disagg-runner/sbatch"
)

// TestExitCodeTable checks the one mapping from outcomes and errors to the
// documented exit codes (PIPELINE.md, "Exit codes").
func TestExitCodeTable(t *testing.T) {
	failed := func(kinds ...runner.Kind) error {
		cf := &runner.CheckFailed{}
		for _, k := range kinds {
			cf.Items = append(cf.Items, runner.Item{Name: string(k), Kind: k})
		}
		return fmt.Errorf("stage: %w", cf)
	}
	cases := []struct {
		name      string
		out       *runner.Outcome
		err       error
		code      int
		userError bool
	}{
		{"no outcome, no error", nil, nil, 0, true},
		{"verdict passes pytest's code", &runner.Outcome{ExitCode: 3}, nil, 3, true},
		{"verdict timeout", &runner.Outcome{ExitCode: 124}, nil, 124, true},
		{"missing prerequisite", nil, failed(runner.Prerequisite), 10, true},
		{"only bad input", nil, failed(runner.Input, runner.Input), 11, true},
		{"bad input and something missing", nil, failed(runner.Input, runner.Prerequisite), 10, true},
		{"unreachable wins", nil, failed(runner.Prerequisite, runner.Connection), 12, true},
		{"check command", nil, &checksFailed{1, 20}, 10, true},
		{"transport", nil, fmt.Errorf("upload: %w", transport.Unreachable(errors.New("ssh: refused"))), 12, true},
		{"cluster step", nil, &runner.ClusterError{Err: errors.New("mv: permission denied")}, 12, true},
		{"sbatch refused", nil, fmt.Errorf("%w: invalid account", sbatch.ErrSubmitRefused), 13, true},
		{"usage", nil, badInput(errors.New("--launch-sh is required")), 11, true},
		{"unknown job", nil, fmt.Errorf("job 7: %w", sbatch.ErrUnknownJob), 11, true},
		{"attach without workspace", nil, &runner.NoWorkspaceError{ID: "7"}, 11, true},
		{"workspace", nil, &runner.WorkspaceError{Err: errors.New("read-only file system")}, 10, true},
		{"unmaskable secret", nil, &runner.MaskError{Files: []string{"x.log"}, Err: errors.New("EIO")}, 70, true},
		{"a bug", nil, errors.New("nil map"), 70, false},
	}
	for _, c := range cases {
		code, user := exitCode(context.Background(), c.out, c.err)
		if code != c.code || user != c.userError {
			t.Errorf("%s: exit %d (user error %v), want %d (%v)", c.name, code, user, c.code, c.userError)
		}
	}

	// A signal decides whatever else happened.
	for sig, want := range map[syscall.Signal]int{syscall.SIGINT: 130, syscall.SIGTERM: 143} {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(runner.Interrupt{Signal: sig})
		if code, _ := exitCode(ctx, &runner.Outcome{ExitCode: 0}, nil); code != want {
			t.Errorf("%v: exit %d, want %d", sig, code, want)
		}
		// After the verdict was written, the verdict's code stands.
		if code, _ := exitCode(ctx, &runner.Outcome{ExitCode: 0, RunnerEnded: time.Now()}, nil); code != 0 {
			t.Errorf("%v after the verdict: exit %d, want 0", sig, code)
		}
		if code, _ := exitCode(ctx, nil, errors.New("ssh: closed")); code != want {
			t.Errorf("%v with an error: exit %d, want %d", sig, code, want)
		}
	}
}
