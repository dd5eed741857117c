package sbatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/disagg-runner/disagg-runner/internal/transport"
)

// fakeSbatch puts an `sbatch` stand-in first in PATH for commands run
// through the real Local transport, so that the submit script itself (cd,
// recording the id, temp+rename) runs for real. body is the stand-in's
// bash; it sees the arguments sbatch got.
func fakeSbatch(t *testing.T, body string) (run func(string) string) {
	t.Helper()
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "sbatch"), []byte("#!/bin/bash\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return func(cmd string) string { return "PATH=" + bin + ":$PATH; " + cmd }
}

// pathT runs every command through Local with a changed PATH.
type pathT struct {
	transport.Local
	wrap func(string) string
}

func (p pathT) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	return p.Local.Run(ctx, p.wrap(cmd), stdin, stdout, stderr)
}

func TestSubmitRecordsID(t *testing.T) {
	for _, out := range []string{"1234", "1234;cluster1"} {
		t.Run(out, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "launch.sh"), []byte("#!/bin/bash\n"), 0o755)
			wrap := fakeSbatch(t, `[ "$1 $2 $3" = "--parsable -- launch.sh" ] && [ -f launch.sh ] || { echo "sbatch: error: bad args $* in $PWD" >&2; exit 1; }
echo "sbatch: warning: noise" >&2
echo '`+out+`'`)
			c := &Client{T: pathT{wrap: wrap}}
			idFile := filepath.Join(dir, "job-id")
			id, err := c.Submit(context.Background(), dir, "launch.sh", idFile)
			if err != nil || id != "1234" {
				t.Fatalf("id %q, err %v", id, err)
			}
			if b, _ := os.ReadFile(idFile); string(b) != "1234\n" {
				t.Errorf("job id file holds %q", b)
			}
			if got, err := c.Recorded(context.Background(), idFile); got != "1234" || err != nil {
				t.Errorf("Recorded: %q %v", got, err)
			}
			leftovers, _ := filepath.Glob(idFile + ".tmp*")
			if len(leftovers) > 0 {
				t.Errorf("temporary files left: %v", leftovers)
			}
		})
	}
}

func TestSubmitRefusesSecondSubmission(t *testing.T) {
	dir := t.TempDir()
	idFile := filepath.Join(dir, "job-id")
	os.WriteFile(idFile, []byte("77\n"), 0o644)
	wrap := fakeSbatch(t, `echo submitted >> "`+dir+`/calls"; echo 78`)
	id, err := (&Client{T: pathT{wrap: wrap}}).Submit(context.Background(), dir, "launch.sh", idFile)
	if !errors.Is(err, ErrAlreadySubmitted) || id != "77" {
		t.Fatalf("id %q, err %v", id, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "calls")); err == nil {
		t.Error("sbatch ran although a job was recorded")
	}
}

func TestSubmitRefused(t *testing.T) {
	dir := t.TempDir()
	wrap := fakeSbatch(t, `echo 'sbatch: error: Batch job submission failed: Invalid partition name specified' >&2; exit 1`)
	id, err := (&Client{T: pathT{wrap: wrap}, Policy: fastPolicy}).Submit(context.Background(), dir, "launch.sh", filepath.Join(dir, "job-id"))
	if id != "" || !errors.Is(err, ErrSubmitRefused) {
		t.Fatalf("id %q, err %v", id, err)
	}
	if err.Error() != "sbatch: error: Batch job submission failed: Invalid partition name specified" {
		t.Errorf("message %q", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "job-id")); err == nil {
		t.Error("a refused submission recorded a job id")
	}
}

func TestSubmitMissingDir(t *testing.T) {
	wrap := fakeSbatch(t, `echo 1`)
	_, err := (&Client{T: pathT{wrap: wrap}}).Submit(context.Background(), "/nonexistent/ws", "launch.sh", "job-id")
	if !errors.Is(err, ErrSubmitRefused) || !strings.Contains(err.Error(), "/nonexistent/ws") {
		t.Fatalf("%v", err)
	}
}

func TestSubmitRetriesOnlySafeRejections(t *testing.T) {
	for _, tt := range []struct {
		msg       string
		retried   bool
		mayExist  bool
		succeedAt int
	}{
		{"Unable to contact slurm controller (connect failure)", true, false, 3},
		{"Slurm backup controller in standby mode", true, false, 2},
		{"Rate limit exceeded, please retry momentarily", true, false, 2},
		{"Unable to contact slurm controller (connect failure)", true, false, 99}, // gives up
		{"Socket timed out on send/recv operation", false, true, 2},
		{"Unable to contact slurm controller (receive failure)", false, true, 2},
		{"Invalid account or account/partition combination specified", false, false, 2},
	} {
		t.Run(fmt.Sprintf("%s/%d", tt.msg, tt.succeedAt), func(t *testing.T) {
			dir := t.TempDir()
			counter := filepath.Join(dir, "n")
			wrap := fakeSbatch(t, fmt.Sprintf(`n=$(( $(cat %[1]q 2>/dev/null || echo 0) + 1 )); echo $n > %[1]q
if [ $n -ge %[2]d ]; then echo 500; exit 0; fi
echo 'sbatch: error: Batch job submission failed: %[3]s' >&2; exit 1`, counter, tt.succeedAt, tt.msg))
			var logs []string
			c := &Client{T: pathT{wrap: wrap}, Policy: fastPolicy, Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }}
			id, err := c.Submit(context.Background(), dir, "launch.sh", "job-id")
			b, _ := os.ReadFile(counter)
			calls := strings.TrimSpace(string(b))
			switch {
			case tt.retried && tt.succeedAt <= fastPolicy.SubmitRetries+1:
				if err != nil || id != "500" || calls != fmt.Sprint(tt.succeedAt) {
					t.Fatalf("id %q err %v after %s calls", id, err, calls)
				}
			case tt.retried:
				if !errors.Is(err, ErrSubmitRefused) || calls != fmt.Sprint(fastPolicy.SubmitRetries+1) {
					t.Fatalf("err %v after %s calls; want refused after %d", err, calls, fastPolicy.SubmitRetries+1)
				}
			default:
				if !errors.Is(err, ErrSubmitRefused) || calls != "1" {
					t.Fatalf("err %v after %s calls; want refused at once", err, calls)
				}
				if got := strings.Contains(err.Error(), "may have created the job"); got != tt.mayExist {
					t.Errorf("warning about a possible job: %v in %q", got, err)
				}
			}
		})
	}
}

func TestSubmitRecordFailureKeepsID(t *testing.T) {
	dir := t.TempDir()
	wrap := fakeSbatch(t, `echo 321`)
	// The id file's folder does not exist: the job went in, its id cannot
	// be recorded, and the caller must still learn which job exists.
	id, err := (&Client{T: pathT{wrap: wrap}}).Submit(context.Background(), dir, "launch.sh", filepath.Join(dir, "no", "such", "job-id"))
	if id != "321" || err == nil || !strings.Contains(err.Error(), "321 was submitted") || errors.Is(err, ErrSubmitRefused) {
		t.Fatalf("id %q err %v", id, err)
	}
}

func TestSubmitConnectionLost(t *testing.T) {
	lost := transport.Unreachable(fmt.Errorf("ssh x: %w", transport.ErrConnectionLost))
	for _, recorded := range []bool{true, false} {
		t.Run(fmt.Sprint("recorded=", recorded), func(t *testing.T) {
			f := &fakeT{answer: func(cmd string) answer {
				if strings.Contains(cmd, "sbatch") {
					return answer{err: lost}
				}
				if recorded {
					return answer{stdout: "888\n"}
				}
				return answer{}
			}}
			id, err := (&Client{T: f, Policy: fastPolicy}).Submit(context.Background(), "/ws", "launch.sh", "job-id")
			if recorded {
				if err != nil || id != "888" {
					t.Fatalf("id %q err %v", id, err)
				}
				if !strings.Contains(f.calls[1], "/ws/job-id") {
					t.Errorf("read %q, want the id file under dir", f.calls[1])
				}
				return
			}
			if id != "" || !errors.Is(err, transport.ErrConnectionLost) || !errors.Is(err, transport.ErrUnreachable) || f.count("sbatch") != 1 {
				t.Fatalf("id %q err %v, %d sbatch calls: a lost submission must never be repeated blindly", id, err, f.count("sbatch"))
			}
		})
	}
}

func TestRecordedMissingAndBad(t *testing.T) {
	dir := t.TempDir()
	c := &Client{T: transport.Local{}}
	if id, err := c.Recorded(context.Background(), filepath.Join(dir, "none")); id != "" || err != nil {
		t.Errorf("missing: %q %v", id, err)
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("Submitted batch job 5\n"), 0o644)
	if _, err := c.Recorded(context.Background(), bad); err == nil {
		t.Error("a malformed id file was accepted")
	}
}
