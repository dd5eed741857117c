package sbatch

import (
	"context"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/transport"
)

// answer is what the fake login node prints for one command.
type answer struct {
	stdout, stderr string
	code           int   // non-zero: the command "exits" with it
	err            error // returned as is (a transport failure)
	hang           bool  // the command never answers: Run waits for ctx
}

// fakeT is a transport.Transport whose commands are answered by a
// function of the command line: the recorded Slurm answers go in through
// it, and it counts what was asked.
type fakeT struct {
	mu     sync.Mutex
	answer func(cmd string) answer
	calls  []string
}

var _ transport.Transport = (*fakeT)(nil)

func (f *fakeT) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	f.calls = append(f.calls, cmd)
	fn := f.answer
	f.mu.Unlock()
	a := fn(cmd)
	if a.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	if stdout != nil {
		io.WriteString(stdout, a.stdout)
	}
	if stderr != nil {
		io.WriteString(stderr, a.stderr)
	}
	if a.err != nil {
		return a.err
	}
	if a.code != 0 {
		return &transport.ExitError{Cmd: cmd, Code: a.code}
	}
	return nil
}

func (f *fakeT) WriteFile(context.Context, string, []byte, os.FileMode) error { return nil }
func (f *fakeT) String() string                                               { return "fake" }
func (f *fakeT) Close() error                                                 { return nil }

// count returns how many commands contained sub.
func (f *fakeT) count(sub string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.Contains(c, sub) {
			n++
		}
	}
	return n
}

// kind names a command the way the fake cluster dispatches on it.
func kind(cmd string) string {
	switch {
	case strings.Contains(cmd, "scontrol -a show job"):
		return "scontrol"
	case strings.Contains(cmd, "sacct "):
		return "sacct"
	case strings.Contains(cmd, "scancel "):
		return "scancel"
	case strings.Contains(cmd, "sbatch "):
		return "sbatch"
	case strings.Contains(cmd, "head -c 200"):
		return "sentinel"
	}
	return "other"
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fastPolicy keeps the unit tests quick; the ratios between the intervals
// are those of the defaults.
var fastPolicy = Policy{
	FastPoll:        10 * time.Millisecond,
	SlowPoll:        30 * time.Millisecond,
	ControllerEvery: 300 * time.Millisecond,
	SubmitRetries:   3,
}

// fakeClock is a clock for Watch that moves only when Watch sleeps, and
// then at once: a watch's polls come due in the order its logic puts them
// in, however slow the machine is, and a minute of it takes no time.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	end    time.Time          // with cancel: the virtual deadline
	cancel context.CancelFunc // ends the watch's context at end
}

// clockStart is after every sentinel's epoch in the tests, as the real
// clock is: a sentinel is read after it was written.
var clockStart = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func newFakeClock() *fakeClock { return &fakeClock{now: clockStart} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil || d <= 0 {
		return err
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	if c.cancel != nil && !c.now.Before(c.end) {
		c.now = c.end
		c.cancel()
	}
	c.mu.Unlock()
	return ctx.Err()
}

// context returns a context that the clock ends once it has moved on by d:
// a deadline in the clock's time. (A real 30 s bound only turns a hang
// into a failure.) A watch cut short by it returns context.Canceled.
func (c *fakeClock) context(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithCancel(testContext(t, 30*time.Second))
	t.Cleanup(cancel)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.end, c.cancel = c.now.Add(d), cancel
	return ctx
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
