package sbatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/transport"
)

// hookT runs commands on this machine and lets a test act before a given
// command, or break it.
type hookT struct {
	transport.Local
	mu     sync.Mutex
	n      int
	before func(n int)                                                  // runs before command n (1-based)
	cut    func(n int, cmd string, stdout io.Writer, full []byte) error // may replace command n's outcome
}

func (h *hookT) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	h.mu.Lock()
	h.n++
	n := h.n
	h.mu.Unlock()
	if h.before != nil {
		h.before(n)
	}
	if h.cut == nil {
		return h.Local.Run(ctx, cmd, stdin, stdout, stderr)
	}
	var buf bytes.Buffer
	err := h.Local.Run(ctx, cmd, stdin, &buf, stderr)
	if cerr := h.cut(n, cmd, stdout, buf.Bytes()); cerr != nil {
		return cerr
	}
	stdout.Write(buf.Bytes())
	return err
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Error(err)
		return
	}
	f.WriteString(s)
	f.Close()
}

// followUntil runs Follow in the background; call the returned function to
// stop it and get the result.
func followUntil(t *testing.T, c *Client, path string, w io.Writer) func() (int64, error) {
	stop := make(chan struct{})
	type result struct {
		off int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		off, err := c.Follow(testContext(t, 30*time.Second), path, w, stop)
		done <- result{off, err}
	}()
	return func() (int64, error) {
		close(stop)
		r := <-done
		return r.off, r.err
	}
}

// waitClosed waits for ch to be closed (by a hook, say). The bound only
// turns a hang into a failure; nothing is timed with it.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// oneShot returns a channel and a function that closes it, once however
// often it is called.
func oneShot() (<-chan struct{}, func()) {
	ch := make(chan struct{})
	var once sync.Once
	return ch, func() { once.Do(func() { close(ch) }) }
}

// The file grows between the follower's reads: the hook appends the next
// piece before each read, so every read finds something new (or, for the
// first ones, no file at all), whatever the machine's speed.
func TestFollowGrowingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "job-output.log")
	var pieces []string
	var want strings.Builder
	for i := range 12 {
		// Writes cut mid-line, as a real log's are.
		s := fmt.Sprintf("line %02d: %s\n", i, strings.Repeat("x", i))
		pieces = append(pieces, s[:len(s)/2], s[len(s)/2:])
		want.WriteString(s)
	}
	const missingReads = 3 // not there yet: nothing happens
	allWritten, wrote := oneShot()
	h := &hookT{before: func(n int) {
		if i := n - 1 - missingReads; i >= 0 && i < len(pieces) {
			appendFile(t, path, pieces[i])
			if i == len(pieces)-1 {
				wrote()
			}
		}
	}}
	// Data arrives on every read, so the follower polls at FastPoll.
	c := &Client{T: h, Policy: Policy{FastPoll: time.Millisecond, SlowPoll: 2 * time.Millisecond}}
	var out syncBuffer
	finish := followUntil(t, c, path, &out)
	waitClosed(t, allWritten, "the last piece to be appended")
	off, err := finish()
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != want.String() || off != int64(want.Len()) {
		t.Errorf("streamed %d bytes (offset %d), want %d; equal=%v", len(out.String()), off, want.Len(), out.String() == want.String())
	}
}

func TestFollowReadsOnceMoreAfterStop(t *testing.T) {
	// stop closed before anything was read: the final read still brings
	// the whole file.
	path := filepath.Join(t.TempDir(), "log")
	os.WriteFile(path, []byte("all of it\n"), 0o644)
	stop := make(chan struct{})
	close(stop)
	var out bytes.Buffer
	off, err := (&Client{T: transport.Local{}, Policy: fastPolicy}).Follow(context.Background(), path, &out, stop)
	if err != nil || out.String() != "all of it\n" || off != 10 {
		t.Fatalf("%q %d %v", out.String(), off, err)
	}
	// Missing file and stop closed: returns at once with nothing.
	out.Reset()
	off, err = (&Client{T: transport.Local{}, Policy: fastPolicy}).Follow(context.Background(), path+".none", &out, stop)
	if err != nil || out.Len() != 0 || off != 0 {
		t.Fatalf("%q %d %v", out.String(), off, err)
	}
}

func TestFollowLargeFileInChunks(t *testing.T) {
	defer func(c int64) { followChunk = c }(followChunk)
	followChunk = 4 << 20
	path := filepath.Join(t.TempDir(), "big")
	data := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz\n"), int((2*followChunk+followChunk/3)/37))
	os.WriteFile(path, data, 0o644)
	stop := make(chan struct{})
	close(stop)
	f := &fakeCounter{Transport: transport.Local{}}
	var out bytes.Buffer
	off, err := (&Client{T: f, Policy: fastPolicy}).Follow(context.Background(), path, &out, stop)
	if err != nil || !bytes.Equal(out.Bytes(), data) || off != int64(len(data)) {
		t.Fatalf("got %d bytes, want %d: %v", out.Len(), len(data), err)
	}
	if f.n != 4 { // three chunks and the read that found nothing new
		t.Errorf("%d reads", f.n)
	}
}

type fakeCounter struct {
	transport.Transport
	n int
}

func (f *fakeCounter) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	f.n++
	return f.Transport.Run(ctx, cmd, stdin, stdout, stderr)
}

func TestFollowTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "job-output.log")
	os.WriteFile(path, []byte("first run line 1\nfirst run, half a li"), 0o644)
	appended, markAppended := oneShot()
	h := &hookT{before: func(n int) {
		switch n {
		case 2:
			// Truncated as Slurm does when a requeued job starts again.
			os.WriteFile(path, []byte("second\n"), 0o644)
		case 4:
			// Read 3 followed the new file from 0; the second run goes on.
			appendFile(t, path, "second run goes on\n")
			markAppended()
		}
	}}
	c := &Client{T: h, Policy: fastPolicy}
	var out syncBuffer
	finish := followUntil(t, c, path, &out)
	waitClosed(t, appended, "the fourth read")
	off, err := finish()
	want := "first run line 1\nfirst run, half a li\n" + truncatedMarker(path) + "second\nsecond run goes on\n"
	if err != nil || out.String() != want || off != 26 {
		t.Fatalf("got %q (offset %d, %v)\nwant %q", out.String(), off, err, want)
	}
}

func TestFollowRewrittenPastOffset(t *testing.T) {
	// Between two polls the file was truncated and grew past the old
	// offset: its size alone says nothing, the bytes before the offset do.
	path := filepath.Join(t.TempDir(), "log")
	os.WriteFile(path, []byte(strings.Repeat("A", 100)), 0o644)
	rewritten, rewrote := oneShot()
	h := &hookT{before: func(n int) {
		if n == 2 {
			os.WriteFile(path, []byte(strings.Repeat("B", 300)), 0o644)
			rewrote()
		}
	}}
	var out syncBuffer
	finish := followUntil(t, &Client{T: h, Policy: fastPolicy}, path, &out)
	waitClosed(t, rewritten, "the second read")
	_, err := finish()
	want := strings.Repeat("A", 100) + "\n" + truncatedMarker(path) + strings.Repeat("B", 300)
	if err != nil || out.String() != want {
		t.Fatalf("got %q, %v", out.String(), err)
	}
}

func TestFollowConnectionLostMidRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	var want strings.Builder
	for i := range 200 {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	os.WriteFile(path, []byte(want.String()[:500]), 0o644)
	lost := transport.Unreachable(fmt.Errorf("ssh: %w", transport.ErrConnectionLost))
	// Stopped only once the read after the two cut ones has begun: the
	// follower must neither give up on the cut reads nor stop before them.
	fifth, reached := oneShot()
	h := &hookT{
		before: func(n int) {
			switch n {
			case 3:
				os.WriteFile(path, []byte(want.String()), 0o644)
			case 5:
				reached()
			}
		},
		// The third and fourth reads are cut halfway through their
		// output, as a dropped connection cuts a session: what did arrive
		// must be neither kept nor written twice.
		cut: func(n int, cmd string, stdout io.Writer, full []byte) error {
			if n == 3 || n == 4 {
				stdout.Write(full[:len(full)/2])
				return lost
			}
			return nil
		},
	}
	var logs syncBuffer
	c := &Client{T: h, Policy: fastPolicy, Logf: func(f string, a ...any) { fmt.Fprintf(&logs, f+"\n", a...) }}
	var out syncBuffer
	finish := followUntil(t, c, path, &out)
	waitClosed(t, fifth, "the read after the cut ones")
	off, err := finish()
	if err != nil || out.String() != want.String() || off != int64(want.Len()) {
		t.Fatalf("got %d bytes, want %d (%v); equal=%v", len(out.String()), want.Len(), err, out.String() == want.String())
	}
	if !strings.Contains(logs.String(), "connection lost") {
		t.Errorf("log %q", logs.String())
	}
}

func TestFollowUnreachableIsAnError(t *testing.T) {
	// Unlike a dropped connection, a login node still out of reach after
	// the transport's own retries ends the follow.
	dir := t.TempDir()
	stop := make(chan struct{})
	gone := transport.Unreachable(fmt.Errorf("ssh: still unreachable"))
	h := &hookT{cut: func(n int, cmd string, stdout io.Writer, full []byte) error { return gone }}
	_, err := (&Client{T: h, Policy: fastPolicy}).Follow(testContext(t, 5*time.Second), dir, io.Discard, stop)
	if !errors.Is(err, transport.ErrUnreachable) {
		t.Fatalf("got %v", err)
	}
}

func TestFollowManyPrefixesWholeLines(t *testing.T) {
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen_server_0.log")
	ctx0 := filepath.Join(dir, "ctx_server_0.log")
	appendFile(t, gen, "gen starting\ngen half")
	appendFile(t, filepath.Join(dir, "other.txt"), "not a role log\n")
	// Each read finds the next step written.
	fourth, reached := oneShot()
	h := &hookT{before: func(n int) {
		switch n {
		case 2:
			appendFile(t, ctx0, "ctx up\n") // appears later
			appendFile(t, gen, " a line\ngen done\n")
		case 3:
			appendFile(t, ctx0, "ctx without newline")
		case 4:
			reached()
		}
	}}
	c := &Client{T: h, Policy: fastPolicy}
	stop := make(chan struct{})
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- c.FollowMany(testContext(t, 30*time.Second), dir, "*_server_*.log", &out, stop) }()
	waitClosed(t, fourth, "the fourth read")
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var got, wantGen, wantCtx []string
	for _, l := range strings.SplitAfter(out.String(), "\n") {
		if l == "" {
			continue
		}
		if !strings.HasSuffix(l, "\n") {
			t.Errorf("line without its end: %q", l)
		}
		got = append(got, l)
		switch {
		case strings.HasPrefix(l, "[gen_server_0] "):
			wantGen = append(wantGen, strings.TrimPrefix(l, "[gen_server_0] "))
		case strings.HasPrefix(l, "[ctx_server_0] "):
			wantCtx = append(wantCtx, strings.TrimPrefix(l, "[ctx_server_0] "))
		default:
			t.Errorf("line without a role: %q", l)
		}
	}
	if g := strings.Join(wantGen, ""); g != "gen starting\ngen half a line\ngen done\n" {
		t.Errorf("gen lines %q", g)
	}
	if g := strings.Join(wantCtx, ""); g != "ctx up\nctx without newline\n" {
		t.Errorf("ctx lines %q", g)
	}
}

func TestFollowManyTruncatedAndOddNames(t *testing.T) {
	dir := t.TempDir()
	odd := filepath.Join(dir, "gen server 'x'.log")
	appendFile(t, odd, "before\n")
	rewritten, rewrote := oneShot()
	h := &hookT{before: func(n int) {
		if n == 2 {
			os.WriteFile(odd, []byte("after\n"), 0o644)
			rewrote()
		}
	}}
	stop := make(chan struct{})
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- (&Client{T: h, Policy: fastPolicy}).FollowMany(testContext(t, 30*time.Second), dir, "*.log", &out, stop)
	}()
	waitClosed(t, rewritten, "the second read")
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := "[gen server 'x'] before\n[gen server 'x'] " + truncatedMarker(odd) + "[gen server 'x'] after\n"
	if out.String() != want {
		t.Errorf("got %q\nwant %q", out.String(), want)
	}
}

func TestFollowManyPatternIsNotCode(t *testing.T) {
	dir := t.TempDir()
	canary := filepath.Join(dir, "canary")
	stop := make(chan struct{})
	close(stop)
	for _, pat := range []string{"$(touch " + canary + ")", "`touch " + canary + "`", "*; touch " + canary} {
		err := (&Client{T: transport.Local{}, Policy: fastPolicy}).FollowMany(context.Background(), dir, pat, io.Discard, stop)
		if err != nil {
			t.Errorf("%q: %v", pat, err)
		}
	}
	if _, err := os.Stat(canary); err == nil {
		t.Error("a pattern ran a command")
	}
}

// stallT runs commands on this machine, except that the reads it is told
// to stall pass on part of their output and then hang until their context
// ends, as a session stuck on a loaded login node does.
type stallT struct {
	transport.Local
	mu     sync.Mutex
	n      int
	stalls map[int]bool
}

func (s *stallT) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	s.mu.Lock()
	s.n++
	stall := s.stalls[s.n]
	s.mu.Unlock()
	if !stall {
		return s.Local.Run(ctx, cmd, stdin, stdout, stderr)
	}
	var buf bytes.Buffer
	if err := s.Local.Run(ctx, cmd, stdin, &buf, stderr); err != nil {
		return err
	}
	stdout.Write(buf.Bytes()[:buf.Len()/2])
	<-ctx.Done()
	return ctx.Err()
}

// stallPolicy's PollTimeout is real time: a stalled read costs that much,
// and a read that works must get its first byte out within it even on a
// loaded machine (a read that does not is abandoned and repeated too, so
// the tests only check that the stalled one was logged).
var stallPolicy = Policy{FastPoll: fastPolicy.FastPoll, SlowPoll: fastPolicy.SlowPoll, PollTimeout: 3 * time.Second}

func TestFollowAbandonsStalledRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	var want strings.Builder
	for i := range 200 {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	os.WriteFile(path, []byte(want.String()), 0o644)
	var logs syncBuffer
	c := &Client{T: &stallT{stalls: map[int]bool{1: true}}, Policy: stallPolicy, Logf: func(f string, a ...any) { fmt.Fprintf(&logs, f+"\n", a...) }}
	stop := make(chan struct{})
	close(stop)
	var out bytes.Buffer
	off, err := c.Follow(testContext(t, 30*time.Second), path, &out, stop)
	if err != nil || out.String() != want.String() || off != int64(want.Len()) {
		t.Fatalf("got %d bytes, want %d (%v); equal=%v", out.Len(), want.Len(), err, out.String() == want.String())
	}
	if !strings.Contains(logs.String(), "nothing arrived for 3s") {
		t.Errorf("the abandoned read was not logged: %q", firstChars(logs.String(), 500))
	}
}

func TestFollowManyAbandonsStalledRead(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "gen_server_0.log"), []byte("ready\n"), 0o644)
	var logs syncBuffer
	c := &Client{T: &stallT{stalls: map[int]bool{1: true}}, Policy: stallPolicy, Logf: func(f string, a ...any) { fmt.Fprintf(&logs, f+"\n", a...) }}
	stop := make(chan struct{})
	close(stop)
	var out bytes.Buffer
	if err := c.FollowMany(testContext(t, 30*time.Second), dir, "*_server_*.log", &out, stop); err != nil {
		t.Fatal(err)
	}
	if out.String() != "[gen_server_0] ready\n" {
		t.Errorf("streamed %q", out.String())
	}
	if !strings.Contains(logs.String(), "nothing arrived for 3s") {
		t.Errorf("the abandoned read was not logged: %q", firstChars(logs.String(), 500))
	}
}

// TestFollowSeveralLogsShareReads: three logs followed at once, growing
// between reads, come out whole and in order, and their polls are served
// by shared reads: one remote command reads all three files.
func TestFollowSeveralLogsShareReads(t *testing.T) {
	dir := t.TempDir()
	names := []string{"a.log", "b b.log", "c'.log"} // quoting matters
	const pieces = 30
	var mu sync.Mutex
	var cmds []string
	allWritten, wrote := oneShot()
	h := &hookT{
		before: func(n int) {
			if n <= pieces {
				for _, name := range names {
					appendFile(t, filepath.Join(dir, name), fmt.Sprintf("%s piece %d, half a li", name, n))
					appendFile(t, filepath.Join(dir, name), "ne\n")
				}
			}
			if n == pieces {
				wrote()
			}
		},
		cut: func(_ int, cmd string, _ io.Writer, _ []byte) error {
			mu.Lock()
			cmds = append(cmds, cmd)
			mu.Unlock()
			return nil
		},
	}
	c := &Client{T: h, Policy: Policy{FastPoll: 8 * time.Millisecond, SlowPoll: 16 * time.Millisecond}}
	stop := make(chan struct{})
	outs := make([]syncBuffer, len(names))
	errs := make(chan error, len(names))
	for i, name := range names {
		go func() {
			_, err := c.Follow(context.Background(), filepath.Join(dir, name), &outs[i], stop)
			errs <- err
		}()
	}
	waitClosed(t, allWritten, "the last pieces to be appended")
	close(stop)
	for range names {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i, name := range names {
		want, _ := os.ReadFile(filepath.Join(dir, name))
		if outs[i].String() != string(want) {
			t.Errorf("%s: followed %d bytes, the file has %d", name, len(outs[i].String()), len(want))
		}
	}
	shared := 0
	for _, cmd := range cmds {
		if strings.Contains(cmd, "\nr 2 ") {
			shared++
		}
	}
	if shared == 0 {
		t.Errorf("no read of all three logs in one command among %d commands", len(cmds))
	}
	t.Logf("%d commands, %d of them reading all three logs", len(cmds), shared)
}
