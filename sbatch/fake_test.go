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
	case strings.Contains(cmd, "scontrol show job"):
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

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
