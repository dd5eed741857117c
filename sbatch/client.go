// Package sbatch is the runner's Slurm client: it submits the batch job,
// follows its state and its log files, cancels it and fetches its results,
// all through a transport.Transport, so that the same code works over SSH
// and on the login node itself.
//
// Every Slurm command it runs is costed against slurmctld, which is shared
// by every user of the cluster: `scontrol show job` is 2 RPCs, `squeue -j`
// 3, `sacct` none (it asks slurmdbd). Reading files in the job workspace
// costs the controller nothing, which is why Watch leans on a sentinel file
// and sacct and asks the controller rarely.
package sbatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/transport"
)

// JobID is a Slurm job id as sbatch prints it ("1234"; "1234_5" for an
// array task). It is a string because Slurm's ids are not always plain
// numbers and the runner never does arithmetic on them.
type JobID string

// Client talks to Slurm through T. The zero Policy gives the defaults.
type Client struct {
	T transport.Transport

	// Logf, when set, receives progress and debug lines (retries, polls
	// that failed and will be repeated, the sentinel's content).
	Logf func(format string, args ...any)

	// Policy sets the poll intervals; zero fields take the defaults.
	Policy Policy

	// clock is how Watch tells the time and waits between polls; nil is
	// the real clock. A test hook: the watch tests step a clock of their
	// own, so that what Watch asks when depends on its logic alone and
	// not on how fast the machine runs.
	clock clock

	// The jobs being watched, and the queries their watches share
	// (shared.go).
	mu       sync.Mutex
	watching map[JobID]int
	expect   int // jobs to be watched together (ExpectJobs)
	ctrl     sharedQuery[JobID, JobState]
	acct     sharedQuery[JobID, JobState]
	// The sentinel reads, and each watched job's files to read.
	sentinels    sharedQuery[JobID, string]
	sentinelKeys map[JobID]string
	// The job logs being followed (Follow), and their reads, shared once
	// two or more are followed at once (a run of a test list).
	following  int
	followKeys map[string]string // each followed log's offset
	logReads   sharedQuery[string, []byte]
}

// clock is the time as Watch sees it.
type clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx ends, as sleep does.
	Sleep(ctx context.Context, d time.Duration) error
}

// realClock is the machine's clock.
type realClock struct{}

func (realClock) Now() time.Time                                   { return time.Now() }
func (realClock) Sleep(ctx context.Context, d time.Duration) error { return sleep(ctx, d) }

// Policy holds the timing knobs. Zero fields mean the defaults, which are
// tuned for production; tests shorten them.
type Policy struct {
	// FastPoll is how often cheap reads happen: the sentinel file in Watch
	// and the log files in Follow while they grow. Default 1 s.
	FastPoll time.Duration
	// SlowPoll is how often sacct is asked in Watch, and the longest
	// interval Follow backs off to while a file does not grow. Default 3 s.
	SlowPoll time.Duration
	// ControllerEvery is how often Watch asks slurmctld itself when it
	// has nothing cheaper to trust (a pending job, no accounting, sacct
	// lagging behind); while sacct agrees with the controller the interval
	// is stretched (see Watch). Default 30 s.
	ControllerEvery time.Duration
	// SubmitRetries bounds how often Submit repeats a submission that
	// Slurm rejected without creating a job. Default 5.
	SubmitRetries int
	// PollTimeout bounds each of Watch's reads (sentinel, sacct,
	// scontrol): one that has not answered by then is abandoned (its
	// remote process group killed) and asked again at the next poll, so a
	// stuck session or a hung Slurm command delays the watch instead of
	// stopping it. Default 2 min, far above what a loaded node needs.
	PollTimeout time.Duration
}

const (
	defaultFastPoll        = time.Second
	defaultSlowPoll        = 3 * time.Second
	defaultControllerEvery = 30 * time.Second
	defaultSubmitRetries   = 5
	defaultPollTimeout     = 2 * time.Minute
)

func (p Policy) fastPoll() time.Duration {
	if p.FastPoll > 0 {
		return p.FastPoll
	}
	return defaultFastPoll
}

func (p Policy) slowPoll() time.Duration {
	if p.SlowPoll > 0 {
		return p.SlowPoll
	}
	return defaultSlowPoll
}

func (p Policy) controllerEvery() time.Duration {
	if p.ControllerEvery > 0 {
		return p.ControllerEvery
	}
	return defaultControllerEvery
}

func (p Policy) pollTimeout() time.Duration {
	if p.PollTimeout > 0 {
		return p.PollTimeout
	}
	return defaultPollTimeout
}

func (p Policy) submitRetries() int {
	if p.SubmitRetries > 0 {
		return p.SubmitRetries
	}
	return defaultSubmitRetries
}

func (c *Client) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

// slurmEnv goes in front of every Slurm command. Slurm prints times in the
// login node's local zone and in whatever SLURM_TIME_FORMAT the user's
// profile asks for; pinning both makes the times parseable and comparable
// with the epoch seconds the sentinel holds, wherever the runner runs.
const slurmEnv = "TZ=UTC SLURM_TIME_FORMAT=standard "

// output is what one remote command printed.
type output struct {
	stdout, stderr string
}

// run runs cmd and captures both streams. A non-zero exit comes back as
// the transport's *ExitError together with what the command printed, so
// that callers can read Slurm's message from stderr.
func (c *Client) run(ctx context.Context, cmd string) (output, error) {
	var stdout, stderr bytes.Buffer
	err := c.T.Run(ctx, cmd, nil, &stdout, &stderr)
	return output{stdout.String(), stderr.String()}, err
}

// exitCode returns the exit status of a command that ran, or ok=false when
// the error is not a command's exit (transport failure, cancelled ctx).
func exitCode(err error) (code int, ok bool) {
	var ee *transport.ExitError
	if errors.As(err, &ee) {
		return ee.Code, true
	}
	return 0, false
}

// lastLine returns the last non-empty line of s, trimmed: Slurm's tools put
// the line that matters (the error) last.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\r\n\t "), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

// errorLine picks the line a user needs from a failed Slurm command's
// stderr: the last "error:" line when there is one (sbatch prints warnings
// before it), otherwise the last line.
func errorLine(stderr string) string {
	lines := strings.Split(stderr, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.Contains(l, "error:") {
			return l
		}
	}
	return lastLine(stderr)
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// connectionLost reports a session cut by a broken connection: the command
// may or may not have run, and the transport reconnects on the next call.
func connectionLost(err error) bool {
	return errors.Is(err, transport.ErrConnectionLost)
}

// commandError describes a failed command by what it was for and the
// line it printed last, without repeating the (long) command line; the
// transport's error stays in the chain, so that exit codes and
// transport.ErrConnectionLost remain visible to errors.As and errors.Is.
func commandError(what string, out output, err error) error {
	if code, ok := exitCode(err); ok {
		msg := errorLine(out.stderr)
		if msg == "" {
			msg = fmt.Sprintf("exit status %d", code)
		} else {
			msg = fmt.Sprintf("%s (exit status %d)", msg, code)
		}
		return &wrapped{msg: what + ": " + msg, err: err}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// wrapped is an error with its own message and a cause for errors.Is/As.
type wrapped struct {
	msg string
	err error
}

func (e *wrapped) Error() string { return e.msg }
func (e *wrapped) Unwrap() error { return e.err }
