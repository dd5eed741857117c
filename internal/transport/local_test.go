package transport

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestLocalRun(t *testing.T) {
	ctx := testCtx(t)
	var l Local

	var out bytes.Buffer
	if err := l.Run(ctx, `printf '%s|' "a'b" "$((6*7))"`, nil, &out, nil); err != nil || out.String() != "a'b|42|" {
		t.Errorf("stdout %q, err %v", out.String(), err)
	}

	err := l.Run(ctx, "echo first >&2; echo last >&2; exit 3", nil, nil, nil)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || ee.Stderr != "first\nlast" {
		t.Errorf("got %#v", err)
	}

	var stderr bytes.Buffer
	err = l.Run(ctx, "echo oops >&2; exit 7", nil, nil, &stderr)
	if !errors.As(err, &ee) || ee.Code != 7 || ee.Stderr != "" || stderr.String() != "oops\n" {
		t.Errorf("own stderr writer: %v, %q", err, stderr.String())
	}

	err = l.Run(ctx, "kill -KILL $$", nil, nil, nil)
	if !errors.As(err, &ee) || ee.Code != -1 {
		t.Errorf("killed by a signal: %v", err)
	}

	// Only the tail of a long stderr is kept.
	err = l.Run(ctx, "for i in $(seq 5000); do echo line$i >&2; done; exit 1", nil, nil, nil)
	if !errors.As(err, &ee) || len(ee.Stderr) > stderrTailSize+3 || !strings.HasSuffix(ee.Stderr, "line5000") || !strings.HasPrefix(ee.Stderr, "...") {
		t.Errorf("long stderr kept as %d bytes ending %q", len(ee.Stderr), ee.Stderr[max(0, len(ee.Stderr)-20):])
	}
}

func TestLocalStdin(t *testing.T) {
	ctx := testCtx(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	var out bytes.Buffer
	if err := (Local{}).Run(ctx, "wc -c", bytes.NewReader(data), &out, nil); err != nil || strings.TrimSpace(out.String()) != "1048576" {
		t.Errorf("%q %v", out.String(), err)
	}
	out.Reset()
	if err := (Local{}).Run(ctx, "wc -c", nil, &out, nil); err != nil || strings.TrimSpace(out.String()) != "0" {
		t.Errorf("nil stdin: %q %v", out.String(), err)
	}
}

// Cancelling kills everything the command started, not only bash: a
// background child holding the output pipe would otherwise keep Run (and
// the job it belongs to) waiting, until localWaitDelay. The test makes that
// delay longer than its own patience, so that Run returning at all shows
// the child was killed with the group.
func TestLocalCancelKillsProcessGroup(t *testing.T) {
	old := localWaitDelay
	localWaitDelay = 10 * patience
	t.Cleanup(func() { localWaitDelay = old })
	ctx, cancel := context.WithCancel(testCtx(t))
	errc := make(chan error, 1)
	out := newLineWriter() // the sleep holds this pipe open
	go func() {
		errc <- (Local{}).Run(ctx, "sleep 300 & echo $!; wait", nil, out, nil)
	}()
	pid := out.pid(t)
	cancel()
	if err := receive(t, errc, "Run to return after cancel (was the sleep left holding its stdout?)"); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	waitFor(t, "the background sleep to die", func() bool { return processGone(pid) })
}

func TestLocalWriteFile(t *testing.T) {
	ctx := testCtx(t)
	var l Local
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "launch.sh")
	if err := l.WriteFile(ctx, path, []byte("echo hi\n"), 0o750); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o750 {
		t.Fatalf("stat: %v %v", st, err)
	}
	if got, _ := os.ReadFile(path); string(got) != "echo hi\n" {
		t.Errorf("read back %q", got)
	}
	assertNoTempFiles(t, filepath.Dir(path))

	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, nil, 0o644)
	if err := l.WriteFile(ctx, filepath.Join(blocker, "x"), nil, 0o644); err == nil {
		t.Error("writing under a regular file succeeded")
	}
	ro := filepath.Join(dir, "ro")
	os.Mkdir(ro, 0o755)
	os.WriteFile(filepath.Join(ro, "f"), []byte("old"), 0o644)
	os.Chmod(ro, 0o555)
	defer os.Chmod(ro, 0o755)
	if os.Geteuid() != 0 { // root writes anyway
		if err := l.WriteFile(ctx, filepath.Join(ro, "f"), []byte("new"), 0o644); err == nil {
			t.Error("writing into a read-only folder succeeded")
		}
		assertNoTempFiles(t, ro)
	}
}

// A reader running alongside repeated rewrites only ever sees one whole
// version or the other.
func TestLocalWriteFileAtomic(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "f")
	versions := [][]byte{bytes.Repeat([]byte("a"), 1<<20), bytes.Repeat([]byte("b"), 1<<19)}
	if err := (Local{}).WriteFile(ctx, path, versions[0], 0o644); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads, bad atomic.Int32
	wg.Go(func() {
		for !stop.Load() {
			got, err := os.ReadFile(path)
			reads.Add(1)
			if err != nil || !(bytes.Equal(got, versions[0]) || bytes.Equal(got, versions[1])) {
				bad.Add(1)
			}
		}
	})
	for i := range 50 {
		if err := (Local{}).WriteFile(ctx, path, versions[i%2], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if bad.Load() > 0 {
		t.Errorf("%d of %d reads saw a partial or missing file", bad.Load(), reads.Load())
	}
	assertNoTempFiles(t, filepath.Dir(path))
}
