package transport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
)

// helperEnv is a test server and a config with helper shells on.
func helperEnv(t *testing.T) *testEnv {
	e := newEnv(t)
	e.cfg.HelperShells = 0 // the default
	return e
}

// Commands without input share one login: the helper's. What they print,
// their exit status and their stderr come back as from a session.
func TestHelperRunsCommandsInOneSession(t *testing.T) {
	e := helperEnv(t)
	s := e.dial(t)
	ctx := testCtx(t)
	for i := range 20 {
		var out, errb bytes.Buffer
		cmd := fmt.Sprintf(`printf 'out %d'; printf 'err %d\n' >&2`, i, i)
		if err := s.Run(ctx, cmd, nil, &out, &errb); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("out %d", i); out.String() != want {
			t.Errorf("stdout %q, want %q", out.String(), want)
		}
		if want := fmt.Sprintf("err %d\n", i); errb.String() != want {
			t.Errorf("stderr %q, want %q", errb.String(), want)
		}
	}
	err := s.Run(ctx, "echo bad >&2; exit 3", nil, nil, nil)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || ee.Stderr != "bad" {
		t.Errorf("got %#v, want exit 3 with stderr %q", err, "bad")
	}
	// bash says "Killed" when a command dies of a signal; that is the
	// helper's own chatter, not the command's stderr.
	var errb bytes.Buffer
	err = s.Run(ctx, "kill -KILL $$", nil, nil, &errb)
	if !errors.As(err, &ee) || ee.Code != 128+9 {
		t.Errorf("killed by SIGKILL: got %v, want exit status 137", err)
	}
	if errb.Len() != 0 {
		t.Errorf("stderr %q, want nothing", errb.String())
	}
	if n := e.srv.execs.Load(); n != 1 {
		t.Errorf("%d sessions ran a command, want 1 (the helper)", n)
	}
	// The variables the helper keeps are not the commands'.
	var out bytes.Buffer
	if err := s.Run(ctx, `printf '%s' "${nonce-unset} ${d-unset} ${c-unset}"`, nil, &out, nil); err != nil {
		t.Fatal(err)
	}
	if out.String() != "unset unset unset" {
		t.Errorf("a command sees the helper's variables: %q", out.String())
	}
}

// Output is passed through byte for byte, NULs and things that look like
// a mark included: a command cannot know the nonce.
func TestHelperOutputIsOpaque(t *testing.T) {
	e := helperEnv(t)
	s := e.dial(t)
	var out bytes.Buffer
	cmd := `printf 'a\0b\0%s 0\n' 0123456789abcdef0123456789abcdef; head -c 300000 /dev/zero | tr '\0' x; printf '\0'`
	if err := s.Run(testCtx(t), cmd, nil, &out, nil); err != nil {
		t.Fatal(err)
	}
	want := "a\x00b\x000123456789abcdef0123456789abcdef 0\n" + strings.Repeat("x", 300000) + "\x00"
	if out.String() != want {
		t.Errorf("output differs: got %d bytes, want %d", out.Len(), len(want))
	}
}

// Concurrent commands share the helpers and, when both are busy, get
// sessions of their own; none waits for another's output.
func TestHelperConcurrent(t *testing.T) {
	e := helperEnv(t)
	e.cfg.MaxSessions = 4
	s := e.dial(t)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			var out bytes.Buffer
			if err := s.Run(ctx, fmt.Sprintf("echo %d", i), nil, &out, nil); err != nil {
				t.Error(err)
			} else if out.String() != fmt.Sprintf("%d\n", i) {
				t.Errorf("run %d printed %q", i, out.String())
			}
		})
	}
	wg.Wait()
	if m := e.srv.maxOpen.Load(); m > 4 {
		t.Errorf("%d sessions open at once, want at most 4", m)
	}
	s.helpers.mu.Lock()
	alive := s.helpers.alive
	s.helpers.mu.Unlock()
	if alive > 2 {
		t.Errorf("%d helpers alive, want at most 2 (half of MaxSessions)", alive)
	}
}

// A node where the helper cannot start still runs every command, each in a
// session of its own, and the helper is not tried again.
func TestHelperUnavailable(t *testing.T) {
	e := helperEnv(t)
	debug := newLogLines(t)
	e.cfg.Debugf = debug.logf
	t.Setenv("TMPDIR", "/nonexistent/disagg-runner-test") // the server's bash inherits it: mktemp fails
	s := e.dial(t)
	for range 3 {
		var out bytes.Buffer
		if err := s.Run(testCtx(t), "echo ok", nil, &out, nil); err != nil {
			t.Fatal(err)
		}
		if out.String() != "ok\n" {
			t.Errorf("output %q", out.String())
		}
	}
	if n := e.srv.execs.Load(); n != 4 {
		t.Errorf("%d sessions ran a command, want 4 (one failed helper, three commands)", n)
	}
	if !strings.Contains(debug.String(), "no helper shell on this node") {
		t.Errorf("the debug log does not say why:\n%s", debug.String())
	}
}

// Small files go inside the command, through the helper; large ones are
// streamed as a session's input. Both arrive whole.
func TestHelperWriteFile(t *testing.T) {
	e := helperEnv(t)
	s := e.dial(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	for _, size := range []int{0, 1, 1000, inlineWriteMax, inlineWriteMax + 1} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i * 7)
		}
		p := fmt.Sprintf("%s/sub/f%d", dir, size)
		if err := s.WriteFile(ctx, p, data, 0o640); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		var out bytes.Buffer
		if err := s.Run(ctx, "cat "+p+"; stat -c %a "+p+" >&2", nil, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Errorf("size %d: the file differs (%d bytes)", size, out.Len())
		}
	}
	// Five files of inlineWriteMax or less, the cats and one helper; the
	// large file had a session of its own.
	if n := e.srv.execs.Load(); n != 2 {
		t.Errorf("%d sessions ran a command, want 2", n)
	}
}

// The mark is found wherever the reads cut the stream.
func TestFramedReaderCuts(t *testing.T) {
	mark := []byte("\x00nonce ")
	stream := "first\x00non\x00nonce 0\nsecond\x00nonce 12\n\x00nonce 3\n"
	for _, r := range []io.Reader{strings.NewReader(stream), iotest.OneByteReader(strings.NewReader(stream)), iotest.HalfReader(strings.NewReader(stream))} {
		f := newFramedReader(r)
		var got []string
		for range 3 {
			var out bytes.Buffer
			if _, err := f.copyUntilMark(&out, mark); err != nil {
				t.Fatal(err)
			}
			code, err := f.line(16)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, out.String()+"|"+string(code))
		}
		if want := []string{"first\x00non|0", "second|12", "|3"}; !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
		if _, err := f.copyUntilMark(io.Discard, mark); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("at the end: %v, want io.ErrUnexpectedEOF", err)
		}
	}
}

// Output goes out as it comes: only an end that may start the mark waits
// for the next read.
func TestFramedReaderStreams(t *testing.T) {
	mark := []byte("\x00nonce ")
	pr, pw := io.Pipe()
	f := newFramedReader(pr)
	got := make(chan string, 4)
	done := make(chan error, 1)
	go func() {
		_, err := f.copyUntilMark(writerFunc(func(p []byte) (int, error) { got <- string(p); return len(p), nil }), mark)
		done <- err
	}()
	pw.Write([]byte("line 1\n"))
	if s := receive(t, got, "the first line before the mark"); s != "line 1\n" {
		t.Errorf("got %q", s)
	}
	pw.Write([]byte("tail\x00non"))
	if s := receive(t, got, "what cannot be the mark"); s != "tail" {
		t.Errorf("got %q, want %q (the rest may start the mark)", s, "tail")
	}
	pw.Write([]byte("sense\x00nonce 0\n"))
	if s := receive(t, got, "the held bytes, which were not the mark"); s != "\x00nonsense" {
		t.Errorf("got %q", s)
	}
	if err := receive(t, done, "the mark"); err != nil {
		t.Fatal(err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
