package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/disagg-runner/disagg-runner/internal/shellquote"
)

// A session costs a login on the node: sshd starts the user's shell, and
// that shell sources the user's start-up files (bash does so even for
// `ssh host cmd`). Measured on the test cluster that is 0.65 s for a pyenv
// init, while the command itself (squeue, a stat, a small write) takes
// milliseconds; cluster users' module loads cost more still. So a command
// without input runs in a helper shell: a session started once and kept
// for the connection's life, which reads commands from its input and runs
// each with `bash -c`, output streamed back as it comes.
//
// Each command's output ends with a mark that holds a nonce the shell got
// on its input (never on a command line, which other users of the node
// could read in ps): stdout ends with NUL, nonce, space, exit status,
// newline; stderr with NUL, nonce, newline. A command cannot print the mark
// by chance, and a job log it streams cannot forge it. Commands go one at a
// time, each ended by a NUL (which no shell command holds), and the next one
// is sent only after both marks of the last: nothing is ever read ahead.
//
// The lifeline is the helper's own: a watcher holds the session's input and
// forwards it to the shell through a FIFO; when the input ends (Close, a
// cancelled command, a dropped connection noticed by sshd) it kills the
// helper's process group, the running command with it. The FIFO's folder
// is private (mktemp -d) and removed first. The helper's own stderr goes to
// /dev/null (the commands get the session's through fd 4): bash reports a
// command killed by a signal there ("Killed"), which is no command's output.
const helperScript = `IFS= read -r nonce || exit 1
d=$(mktemp -d "${TMPDIR:-/tmp}/disagg-runner.XXXXXXXXXX") || exit 1
mkfifo -m 600 "$d/in" || { rm -rf -- "$d"; exit 1; }
{ cat; rm -rf -- "$d"; kill -KILL 0; } <&0 >"$d/in" 2>/dev/null &
exec 3<"$d/in" 4>&2 </dev/null 2>/dev/null
printf 'ready %s\n' "$nonce"
printf 'ready %s\n' "$nonce" >&4
while IFS= read -r -d '' c <&3; do
	` + remoteBash + `"$c" 3<&- 2>&4 4>&-
	printf '\0%s %d\n' "$nonce" "$?"
	printf '\0%s\n' "$nonce" >&4
done
`

const (
	defaultHelperShells = 2
	// helperStartTimeout bounds the wait for a helper's first "ready": a
	// login that takes longer is not one to keep waiting on, and the
	// command goes through a session of its own instead.
	helperStartTimeout = 30 * time.Second
	helperBuffer       = 256 << 10
)

// helperShell is one long-lived shell on the node.
type helperShell struct {
	c       *sshConn
	sess    *ssh.Session
	stdin   io.WriteCloser
	stdout  *framedReader
	stderr  *framedReader
	outMark []byte // "\x00" nonce " "
	errMark []byte // "\x00" nonce "\n"
}

// helpers is the SSH's pool of helper shells: idle ones wait here, and at
// most max are alive, each holding one of the connection's session tokens
// for its whole life.
type helpers struct {
	mu       sync.Mutex
	idle     []*helperShell
	alive    int
	max      int
	disabled bool // the node could not start one: plain sessions only
}

// takeHelper returns an idle helper on the live connection, or starts one
// when fewer than the maximum are alive and a session token is free; nil
// means run in a session of its own. The error is only ctx's.
func (s *SSH) takeHelper(ctx context.Context) (*helperShell, error) {
	p := &s.helpers
	for {
		p.mu.Lock()
		if n := len(p.idle); n > 0 {
			h := p.idle[n-1]
			p.idle = p.idle[:n-1]
			p.mu.Unlock()
			// A helper that was handed a command cannot say whether it
			// ran when the connection turns out dead, so the connection
			// is proved alive first (one round trip, where a session of
			// its own would cost a login): a drop noticed here is
			// reconnected from, as a session that cannot be opened is.
			if h.c.isDead() || h.c.ping(s.cfg.KeepAliveInterval) != nil {
				s.dropHelper(h)
				continue
			}
			return h, nil
		}
		if p.disabled || p.alive >= p.max {
			p.mu.Unlock()
			return nil, nil
		}
		select {
		case s.sessions <- struct{}{}:
		default:
			// Every token is in use: waiting for a helper slot would
			// serialise this command behind a stream.
			p.mu.Unlock()
			return nil, nil
		}
		p.alive++
		p.mu.Unlock()
		h, err := s.startHelper(ctx)
		if err != nil {
			p.mu.Lock()
			p.alive--
			p.mu.Unlock()
			s.releaseSession()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, nil
		}
		return h, nil
	}
}

// putHelper gives a helper back after a command that left it in step.
func (s *SSH) putHelper(h *helperShell) {
	s.helpers.mu.Lock()
	s.helpers.idle = append(s.helpers.idle, h)
	s.helpers.mu.Unlock()
}

// dropHelper ends a helper (its watcher then kills whatever it runs) and
// frees its token.
func (s *SSH) dropHelper(h *helperShell) {
	h.stdin.Close()
	h.sess.Close()
	s.helpers.mu.Lock()
	s.helpers.alive--
	s.helpers.mu.Unlock()
	s.releaseSession()
}

// startHelper logs in once more and waits for the helper's "ready". A node
// where the script cannot run (no mkfifo, a shell that is not bash...) turns
// helpers off for this transport; other failures only fail this start.
func (s *SSH) startHelper(ctx context.Context) (*helperShell, error) {
	start := time.Now()
	c, sess, err := s.openSession(ctx)
	if err != nil {
		return nil, err
	}
	stdin, err1 := sess.StdinPipe()
	stdout, err2 := sess.StdoutPipe()
	stderr, err3 := sess.StderrPipe()
	if err := errors.Join(err1, err2, err3); err != nil {
		sess.Close()
		return nil, err
	}
	if err := sess.Start(remoteBash + shellquote.Quote(helperScript)); err != nil {
		sess.Close()
		return nil, err
	}
	var rnd [16]byte
	rand.Read(rnd[:])
	nonce := hex.EncodeToString(rnd[:])
	h := &helperShell{
		c: c, sess: sess, stdin: stdin,
		stdout:  newFramedReader(stdout),
		stderr:  newFramedReader(stderr),
		outMark: []byte("\x00" + nonce + " "),
		errMark: []byte("\x00" + nonce + "\n"),
	}
	ready := []byte("ready " + nonce + "\n")
	startStderr := &tailBuffer{}
	startErr := make(chan error, 1)
	go func() {
		if _, err := io.WriteString(stdin, nonce+"\n"); err != nil {
			startErr <- err
			return
		}
		// Whatever the user's start-up files print comes first; it is
		// not ours to show.
		errc := make(chan error, 1)
		go func() {
			_, err := h.stderr.copyUntilMark(startStderr, ready)
			errc <- err
		}()
		_, err := h.stdout.copyUntilMark(nil, ready)
		if errErr := <-errc; err == nil {
			err = errErr
		}
		if err != nil && startStderr.String() != "" {
			err = fmt.Errorf("%w; it said: %s", err, strings.Join(strings.Fields(startStderr.String()), " "))
		}
		startErr <- err
	}()
	t := time.NewTimer(helperStartTimeout)
	defer t.Stop()
	select {
	case err = <-startErr:
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = fmt.Errorf("no answer in %s", helperStartTimeout)
	}
	if err != nil {
		stdin.Close()
		sess.Close()
		if ctx.Err() == nil && c.ping(s.cfg.KeepAliveInterval) == nil {
			s.helpers.mu.Lock()
			s.helpers.disabled = true
			s.helpers.mu.Unlock()
			s.cfg.Debugf("ssh %s: no helper shell on this node (%v); every command gets a session of its own", s.name, err)
		}
		return nil, err
	}
	s.cfg.Debugf("ssh %s: helper shell ready in %s", s.name, time.Since(start).Round(time.Microsecond))
	return h, nil
}

// runInHelper runs cmd in h and reports as Run does. h goes back to the
// pool when the command ended with both marks read; otherwise it is
// dropped, which kills what it still runs.
func (s *SSH) runInHelper(ctx context.Context, h *helperShell, label, cmd string, stdout, stderr io.Writer) error {
	start := time.Now()
	defer func() {
		s.cfg.Debugf("ssh %s: %s: helper shell, command %s", s.name, shortCmd(label), time.Since(start).Round(time.Microsecond))
	}()
	var tail *tailBuffer
	if stderr == nil {
		tail = &tailBuffer{}
		stderr = tail
	}
	var guard outputGuard
	out, errw := guard.wrap(stdout, stderr)
	defer guard.detach()

	type result struct {
		code       int
		stream     error // the helper's streams broke: it is out of step
		writeError error // the caller's writer failed; the helper is fine
	}
	done := make(chan result, 1)
	go func() {
		if _, err := h.stdin.Write(append([]byte(cmd), 0)); err != nil {
			done <- result{stream: err}
			return
		}
		errc := make(chan error, 1)
		var errWrite error
		go func() {
			var err error
			errWrite, err = h.stderr.copyUntilMark(errw, h.errMark)
			errc <- err
		}()
		outWrite, err := h.stdout.copyUntilMark(out, h.outMark)
		var code int
		if err == nil {
			var status []byte
			if status, err = h.stdout.line(16); err == nil {
				if code, err = strconv.Atoi(string(status)); err != nil {
					err = fmt.Errorf("helper shell: bad exit status %q", status)
				}
			}
		}
		err = errors.Join(err, <-errc)
		done <- result{code: code, stream: err, writeError: errors.Join(outWrite, errWrite)}
	}()

	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		s.dropHelper(h)
		waitAtMost(done, cancelGrace)
		return ctx.Err()
	}
	if r.stream != nil {
		s.dropHelper(h)
		if h.c.ping(s.cfg.KeepAliveInterval) != nil {
			return s.lost(label, h.c.cause)
		}
		// The connection is fine but the helper is gone: the command (or
		// somebody) killed it, and whether the command finished is unknown.
		return s.lost(label, fmt.Errorf("the helper shell ended: %v", r.stream))
	}
	s.putHelper(h)
	if r.writeError != nil {
		return fmt.Errorf("ssh %s: %s: %w", s.name, shortCmd(label), r.writeError)
	}
	if r.code != 0 {
		return &ExitError{Cmd: label, Code: r.code, Stderr: tail.String()}
	}
	return nil
}

// framedReader reads one of a helper's output streams, in which each
// command's output ends with a mark.
type framedReader struct {
	r   io.Reader
	buf []byte
	n   int // bytes in buf not yet consumed
}

func newFramedReader(r io.Reader) *framedReader {
	return &framedReader{r: r, buf: make([]byte, helperBuffer)}
}

// copyUntilMark writes everything before mark to w (nil: discard), and
// consumes the mark. A failing w does not stop the reading, so that the
// stream stays in step; its first error is returned as werr. err is the
// stream's, io.ErrUnexpectedEOF when it ended first.
func (f *framedReader) copyUntilMark(w io.Writer, mark []byte) (werr, err error) {
	write := func(p []byte) {
		if werr == nil && w != nil && len(p) > 0 {
			_, werr = w.Write(p)
		}
	}
	for {
		if i := bytes.Index(f.buf[:f.n], mark); i >= 0 {
			write(f.buf[:i])
			f.n = copy(f.buf, f.buf[i+len(mark):f.n])
			return werr, nil
		}
		// Everything but a start of the mark at the very end can go out
		// now, so that a command's output streams as it comes.
		if hold := markStart(f.buf[:f.n], mark); hold < f.n {
			write(f.buf[:f.n-hold])
			f.n = copy(f.buf, f.buf[f.n-hold:f.n])
		}
		if err := f.fill(); err != nil {
			return werr, err
		}
	}
}

// fill reads more of the stream after what buf holds. A stream that ends
// is io.ErrUnexpectedEOF: a command's output always ends with its mark.
func (f *framedReader) fill() error {
	m, err := f.r.Read(f.buf[f.n:])
	f.n += m
	if err != nil && m == 0 {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}

// markStart returns the length of the longest end of b that the mark
// starts with (the mark itself is not in b).
func markStart(b, mark []byte) int {
	for from := max(0, len(b)-len(mark)+1); from < len(b); from++ {
		if bytes.HasPrefix(mark, b[from:]) {
			return len(b) - from
		}
	}
	return 0
}

// line consumes bytes up to a newline and returns them without it; a line
// longer than max is an error.
func (f *framedReader) line(max int) ([]byte, error) {
	for {
		if i := bytes.IndexByte(f.buf[:f.n], '\n'); i >= 0 {
			l := bytes.Clone(f.buf[:i])
			f.n = copy(f.buf, f.buf[i+1:f.n])
			return l, nil
		}
		if f.n > max {
			return nil, fmt.Errorf("helper shell: no end of line in %q", f.buf[:max])
		}
		if err := f.fill(); err != nil {
			return nil, err
		}
	}
}
