package transport

import (
	"io"
	"strings"
	"sync"
)

// stderrTailSize bounds what an ExitError carries: enough for the last few
// lines of a failing command, small enough to print in one log record.
const stderrTailSize = 4096

// tailBuffer keeps the last stderrTailSize bytes written to it, so that a
// command's failure can be explained without holding all of its output.
type tailBuffer struct {
	mu        sync.Mutex
	buf       []byte
	truncated bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= stderrTailSize {
		t.truncated = t.truncated || len(t.buf) > 0 || len(p) > stderrTailSize
		t.buf = append(t.buf[:0], p[len(p)-stderrTailSize:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - stderrTailSize; over > 0 {
		t.truncated = true
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// String returns the tail without surrounding blank space, marked when
// earlier output was dropped.
func (t *tailBuffer) String() string {
	if t == nil {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.buf))
	if t.truncated && s != "" {
		s = "..." + s
	}
	return s
}

// outputGuard stands between the SSH library's copy goroutines and the
// caller's writers. It serialises writes when stdout and stderr are the same
// writer (the library copies them concurrently), and after detach it drops
// anything still arriving, so that a cancelled Run never writes into the
// caller's buffers after it has returned.
type outputGuard struct {
	locks    []*sync.Mutex
	detached []*bool
}

type guardedWriter struct {
	mu       *sync.Mutex
	w        io.Writer
	detached *bool
}

func (g *guardedWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if *g.detached {
		return len(p), nil
	}
	return g.w.Write(p)
}

// wrap returns guarded versions of stdout and stderr; nil stays nil.
func (o *outputGuard) wrap(stdout, stderr io.Writer) (io.Writer, io.Writer) {
	var out, errw io.Writer
	var outG *guardedWriter
	if stdout != nil {
		outG = o.newWriter(stdout)
		out = outG
	}
	if stderr != nil {
		if outG != nil && sameWriter(stdout, stderr) {
			errw = &guardedWriter{mu: outG.mu, w: stderr, detached: outG.detached}
		} else {
			errw = o.newWriter(stderr)
		}
	}
	return out, errw
}

func (o *outputGuard) newWriter(w io.Writer) *guardedWriter {
	g := &guardedWriter{mu: new(sync.Mutex), w: w, detached: new(bool)}
	o.locks = append(o.locks, g.mu)
	o.detached = append(o.detached, g.detached)
	return g
}

// detach waits for any write in progress and turns later writes into no-ops.
func (o *outputGuard) detach() {
	for i, mu := range o.locks {
		mu.Lock()
		*o.detached[i] = true
		mu.Unlock()
	}
}

// sameWriter compares two writers the way os/exec does: interface values
// whose dynamic type is not comparable make == panic, and such writers
// cannot be the same value anyway.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}
