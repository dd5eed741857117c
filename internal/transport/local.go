package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/atomicfile"
)

// Local runs commands on this machine: the runner is already on the login
// node, so Slurm's commands and the shared file system are right here.
// The zero value is ready to use.
type Local struct{}

var _ Transport = Local{}

// localWaitDelay bounds how long Run waits for output pipes held open by a
// process that escaped the killed group (one that called setsid, say).
// A variable only so that a test can make it longer than its own patience:
// a Run that returns then proves the group was killed.
var localWaitDelay = 2 * time.Second

// Run runs cmd with `bash -c` in its own process group. When ctx ends the
// whole group is killed, so that nothing the command started lingers, and
// Run returns ctx.Err(). A non-zero exit returns an *ExitError; its Stderr
// holds the tail of stderr when the caller passed no stderr writer.
func (Local) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := exec.CommandContext(ctx, "bash", "-c", cmd)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error {
		// A negative pid addresses the group; Setpgid made the group id
		// equal to bash's pid.
		return syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	}
	c.WaitDelay = localWaitDelay
	c.Stdin = stdin
	c.Stdout = stdout
	var tail *tailBuffer
	if stderr == nil {
		tail = &tailBuffer{}
		stderr = tail
	}
	c.Stderr = stderr

	err := c.Run()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		// ExitCode is -1 for a signal, which is what ExitError.Code promises.
		return &ExitError{Cmd: cmd, Code: ee.ExitCode(), Stderr: tail.String()}
	}
	return fmt.Errorf("local: run %q: %w", cmd, err)
}

// WriteFile creates path's folder and writes the file atomically, so that
// readers (a job starting on another node of the shared file system, say)
// see either the old file or the whole new one, never a part.
func (Local) WriteFile(ctx context.Context, path string, data []byte, mode os.FileMode) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("local: write %s: %w", path, err)
	}
	if err := atomicfile.Write(path, data, mode); err != nil {
		return fmt.Errorf("local: write %s: %w", path, err)
	}
	return nil
}

// String names the transport for logs.
func (Local) String() string { return "local" }

// Close does nothing: there is no connection to release.
func (Local) Close() error { return nil }
