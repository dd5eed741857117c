// Package transport is the only place that reaches the cluster: it runs
// command lines on the login node (over SSH, or on this machine when the
// runner already is on the login node) and writes files there atomically.
// Everything above it (Slurm client, runner) speaks in command lines and
// paths and never knows which implementation it has.
package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// Transport runs commands and moves files on the login node.
type Transport interface {
	// Run runs cmd with `bash -c` semantics on the login node. stdin,
	// stdout and stderr may be nil. A command that ran and exited non-zero
	// returns an *ExitError; failing to reach the node returns an error
	// for which errors.Is(err, ErrUnreachable) holds.
	Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error

	// WriteFile writes data to path atomically (a temporary name in the
	// same folder, then rename), creating parent folders as needed.
	WriteFile(ctx context.Context, path string, data []byte, mode os.FileMode) error

	// String names the transport for logs ("local", "ssh root@host:2222").
	String() string

	// Close releases the connection, if any.
	Close() error
}

// ErrUnreachable is in the chain of every error that says the login node
// could not be reached: connection, authentication, host key, or a
// connection that stayed down for the whole reconnect budget.
var ErrUnreachable = errors.New("the login node cannot be reached")

// unreachable marks err as ErrUnreachable while keeping its own message and
// chain (ErrConnectionLost, a host-key error) visible to errors.Is/As.
type unreachable struct{ err error }

func (u *unreachable) Error() string        { return u.err.Error() }
func (u *unreachable) Unwrap() error        { return u.err }
func (u *unreachable) Is(target error) bool { return target == ErrUnreachable }

// Unreachable returns err marked as ErrUnreachable; nil stays nil.
func Unreachable(err error) error {
	if err == nil {
		return nil
	}
	return &unreachable{err}
}

// ExitError reports a command that ran and exited with a non-zero status.
type ExitError struct {
	Cmd    string
	Code   int    // -1 when killed by a signal or the status is unknown; 128+n from an SSH helper shell
	Stderr string // the tail of stderr, when captured
}

func (e *ExitError) Error() string {
	if e.Stderr != "" {
		return fmt.Sprintf("%s: exit status %d: %s", e.Cmd, e.Code, e.Stderr)
	}
	return fmt.Sprintf("%s: exit status %d", e.Cmd, e.Code)
}

func unreachablef(format string, args ...any) error { return Unreachable(fmt.Errorf(format, args...)) }
