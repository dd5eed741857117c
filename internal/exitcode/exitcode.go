// Package exitcode is the single place that knows which failure maps to
// which process exit code (PIPELINE.md, "Exit codes"). Every other package
// wraps its errors with one of the constructors here, so that main can turn
// any error into the documented code without inspecting strings.
package exitcode

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// The documented exit codes. 1–5 are pytest's own and are passed through.
const (
	OK              = 0
	Prerequisite    = 10  // the checklist failed
	BadInput        = 11  // config, test list, prefix, draft invalid; contract check failed
	Unreachable     = 12  // connection, authentication or host key
	SubmitRefused   = 13  // sbatch refused the job
	JobFailed       = 14  // failed outside pytest
	Timeout         = 124 // Slurm TIMEOUT
	Interrupted     = 130 // SIGINT
	Terminated      = 143 // SIGTERM
	InternalFailure = 70  // a bug in disagg-runner (EX_SOFTWARE); prints everything
)

// Error carries an exit code with the error that caused it. User-facing
// errors (everything but InternalFailure) print as one line.
type Error struct {
	Code int
	Err  error
	// Shown means the message was already printed (as the run's verdict
	// line), so the final report must not print it again.
	Shown bool
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// With wraps err so that it exits with code. A nil err stays nil.
func With(code int, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

// Withf formats a message and wraps it with code.
func Withf(code int, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// Shown marks err, which must carry a code, as already printed.
func Shown(err error) error {
	var e *Error
	if errors.As(err, &e) {
		c := *e
		c.Shown = true
		return &c
	}
	return err
}

// WasShown reports whether err was marked Shown.
func WasShown(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Shown
}

// Of returns the exit code for err: 0 for nil, the wrapped code for an
// *Error anywhere in the chain, InternalFailure otherwise.
func Of(err error) int {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return InternalFailure
}

// IsUserError reports whether err is an expected, documented failure (which
// prints as one line) rather than a bug.
func IsUserError(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code != InternalFailure
}

// ForSignal is the exit code for a run interrupted by sig: 128 + the signal
// number, as shells report it (130 for SIGINT, 143 for SIGTERM).
func ForSignal(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return Interrupted
}
