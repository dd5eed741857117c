package cli

import (
	"context"
	"errors"

	"github.com/disagg-runner/disagg-runner/internal/checkoutgen"
	"github.com/disagg-runner/disagg-runner/internal/exitcode"
	"github.com/disagg-runner/disagg-runner/internal/transport"
	"github.com/disagg-runner/disagg-runner/runner"
	"github.com/disagg-runner/disagg-runner/sbatch"
)

// exitCode is the one place where the outcome of a command becomes the
// process's exit code (PIPELINE.md, "Exit codes"). A run that reached its
// verdict exits with the verdict's code; every other error is mapped by
// what it is. userError says whether err is an expected failure, printed
// as one line, rather than a bug, printed with everything we know.
func exitCode(ctx context.Context, out *runner.Outcome, err error) (code int, userError bool) {
	if err == nil && out != nil && !out.RunnerEnded.IsZero() {
		// The verdict was reached (and written): a signal that came after
		// it changes nothing; one that came before is in it already.
		return out.ExitCode, true
	}
	var in runner.Interrupt
	if errors.As(context.Cause(ctx), &in) {
		return exitcode.ForSignal(in.Signal), true
	}
	if err == nil {
		if out != nil {
			return out.ExitCode, true
		}
		return exitcode.OK, true
	}
	var (
		check   *runner.CheckFailed
		ws      *runner.WorkspaceError
		noWS    *runner.NoWorkspaceError
		mask    *runner.MaskError
		usage   *usageError
		failing *checksFailed
		cluster *runner.ClusterError
		differs *differsError
		missing *checkoutgen.MissingError
	)
	switch {
	case errors.As(err, &check):
		switch {
		case check.Has(runner.Connection):
			return exitcode.Unreachable, true
		case check.OnlyInputs():
			return exitcode.BadInput, true
		}
		return exitcode.Prerequisite, true
	case errors.As(err, &failing), errors.As(err, &missing):
		return exitcode.Prerequisite, true
	case errors.As(err, &differs):
		return exitcode.BadInput, true
	case errors.Is(err, transport.ErrUnreachable), errors.As(err, &cluster):
		return exitcode.Unreachable, true
	case errors.Is(err, sbatch.ErrSubmitRefused):
		return exitcode.SubmitRefused, true
	case errors.As(err, &usage), errors.As(err, &noWS), errors.Is(err, sbatch.ErrUnknownJob):
		return exitcode.BadInput, true
	case errors.As(err, &ws):
		return exitcode.Prerequisite, true
	case errors.As(err, &mask):
		// Not a bug, but the run must not pass: the results hold a secret
		// that could not be masked.
		return exitcode.InternalFailure, true
	}
	return exitcode.InternalFailure, false
}

// classify is exitCode for one test of a run of several that stopped
// before its verdict (runner.ManyOptions.Classify).
func classify(ctx context.Context) func(error) int {
	return func(err error) int {
		code, _ := exitCode(ctx, nil, err)
		return code
	}
}

// usageError is a command line or input the user must fix (exit 11).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func badInput(err error) error {
	if err == nil {
		return nil
	}
	return &usageError{err}
}

// differsError is generate --compare-with-checkout finding that the
// checkout's own generator writes another launch.sh (exit 11).
type differsError struct{ msg string }

func (e *differsError) Error() string { return e.msg }

// checksFailed is `check`'s failure: the table above says what failed.
type checksFailed struct{ failed, total int }

func (e *checksFailed) Error() string {
	return itoa(e.failed) + " of " + itoa(e.total) + " checks failed"
}
