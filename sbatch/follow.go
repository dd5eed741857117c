package sbatch

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/shellquote"
)

// followChunk bounds one read of the main log. The bytes stream through
// to the writer as they arrive (memory does not grow with the chunk); the
// bound only keeps one poll from running for many minutes after a long
// disconnection, so that a stop is noticed. Each poll pays a session's
// start-up on the login node (its login shell: 0.2 to 0.8 s on the test
// cluster), so the bound is large: at 256 MiB the start-ups took 40 % of
// the time of streaming a 1 GiB log. A variable for tests.
var followChunk int64 = 1 << 30

const (
	// followManyChunk bounds each role log per poll; they are read
	// together and travel base64-encoded.
	followManyChunk = 1 << 20
	// maxPartialLine bounds a role log's unfinished line: output without
	// newlines (progress bars) is written in pieces of this size.
	maxPartialLine = 64 << 10
	// overlap is how many bytes before the offset each read fetches again
	// and compares with what was already written. A log that was
	// truncated and then grew past the old offset between two polls (a
	// requeued job that started quickly) shows up as different bytes
	// there, where its size alone would not tell.
	overlap = 64
)

// follower keeps the position in one remote file and what it last saw
// before that position.
type follower struct {
	path   string
	offset int64
	tail   []byte // the last (up to overlap) bytes before offset
}

// readPlan is what to ask for: from = offset-len(tail).
func (f *follower) from() int64 { return f.offset - int64(len(f.tail)) }

// advance records fresh bytes written past the offset.
func (f *follower) advance(fresh []byte) {
	f.offset += int64(len(fresh))
	if len(fresh) >= overlap {
		f.tail = append(f.tail[:0], fresh[len(fresh)-overlap:]...)
		return
	}
	keep := append(f.tail, fresh...)
	if len(keep) > overlap {
		keep = keep[len(keep)-overlap:]
	}
	f.tail = append([]byte(nil), keep...)
}

// restart forgets the position: the file was truncated or rewritten.
func (f *follower) restart() { f.offset, f.tail = 0, nil }

// take applies one whole read (FollowMany's): size is the file's size,
// data the bytes from f.from(). It returns the new bytes, and
// restarted=true when the file was truncated or rewritten, in which case
// the caller should write the marker and read again from 0.
func (f *follower) take(size int64, data []byte) (fresh []byte, restarted bool) {
	if size < f.offset || !bytes.HasPrefix(data, f.tail) {
		f.restart()
		return nil, true
	}
	fresh = data[len(f.tail):]
	f.advance(fresh)
	return fresh, false
}

// pollStream is the stdout of one poll of a follower: a size line, then
// the file's bytes from f.from(). It checks the bytes before the offset
// against what was written already and passes the fresh ones straight on
// to w as they arrive, advancing the offset with each: a poll cut short
// by a dropped connection has written only real bytes at their place,
// and the next one goes on from there.
type pollStream struct {
	f         *follower
	w         io.Writer
	head      []byte
	headDone  bool
	missing   bool
	restarted bool
	size      int64  // the file's size when the poll began
	check     []byte // the bytes before the offset still to compare
	fresh     int64
}

func newPollStream(f *follower, w io.Writer) *pollStream {
	return &pollStream{f: f, w: w, check: append([]byte(nil), f.tail...)}
}

func (p *pollStream) Write(b []byte) (int, error) {
	n := len(b)
	if !p.headDone {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			p.head = append(p.head, b...)
			if len(p.head) > 64 {
				return 0, fmt.Errorf("read %s: no size in the answer", p.f.path)
			}
			return n, nil
		}
		p.head, b, p.headDone = append(p.head, b[:i]...), b[i+1:], true
		if err := p.parseHead(); err != nil {
			return 0, err
		}
	}
	if p.missing || p.restarted {
		return n, nil // nothing to pass on; the rest is drained
	}
	if len(p.check) > 0 {
		k := min(len(p.check), len(b))
		if !bytes.Equal(b[:k], p.check[:k]) {
			p.restarted = true
			p.f.restart()
			return n, nil
		}
		p.check, b = p.check[k:], b[k:]
	}
	if len(b) > 0 {
		if _, err := p.w.Write(b); err != nil {
			return 0, err
		}
		p.f.advance(b)
		p.fresh += int64(len(b))
	}
	return n, nil
}

func (p *pollStream) parseHead() error {
	if string(p.head) == "missing" {
		p.missing = true
		return nil
	}
	size, err := strconv.ParseInt(string(p.head), 10, 64)
	if err != nil {
		return fmt.Errorf("read %s: bad size %q", p.f.path, p.head)
	}
	p.size = size
	if size < p.f.offset {
		p.restarted = true
		p.f.restart()
	}
	return nil
}

func truncatedMarker(p string) string {
	return fmt.Sprintf("==== %s was truncated (job restarted?); following from the start ====\n", p)
}

// pollTimer paces a follower: FastPoll while data flows, backing off to
// SlowPoll while it does not, and waking early when stop closes so that
// the final read happens at once.
type pollTimer struct {
	fast, slow, cur time.Duration
}

func (t *pollTimer) next(gotData bool) time.Duration {
	if gotData || t.cur == 0 {
		t.cur = t.fast
	} else {
		t.cur = min(2*t.cur, t.slow)
	}
	return t.cur
}

func (t *pollTimer) wait(ctx context.Context, d time.Duration, stop <-chan struct{}, stopped bool) error {
	if stopped {
		stop = nil // already closed: do not let it cut every wait short
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-stop:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

func closed(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// retryable reports a poll that failed in a way the next poll mends: a
// connection dropped mid-command (reads are idempotent, and nothing of the
// failed read was written), or a read that stalled for PollTimeout and
// was abandoned. Anything else (an unreadable file, a login
// node out of reach after the transport's own retries) would fail again.
func retryable(err error) bool {
	return connectionLost(err) || errors.Is(err, errPollTimeout)
}

// Follow streams the remote file at path to w as it grows, from byte 0,
// until stop is closed and a read that started after that found nothing
// new; it returns the offset reached. A nil stop follows until ctx ends.
//
// Each poll is one remote command (`stat`, then `dd` of the bytes from
// the offset: one process reading in 1 MiB blocks keeps up with
// OpenSSH's own `cat`, where `tail | head` through a pipe reached two
// thirds of it), and never more than one runs at a time. The offset is kept here: a read
// cut by a dropped connection is discarded whole and repeated, so that a
// reconnect neither loses nor repeats a byte. A missing file is "not
// there yet". A file that got shorter, or whose bytes before the offset
// changed, was truncated (a requeued job starts its --output file anew):
// a marker line says so and the file is followed again from 0.
//
// w receives the bytes as they are, not cut at line ends; a writer shared
// with other output should buffer to whole lines.
func (c *Client) Follow(ctx context.Context, path string, w io.Writer, stop <-chan struct{}) (int64, error) {
	c.mu.Lock()
	c.following++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.following--
		delete(c.followKeys, path)
		c.mu.Unlock()
	}()
	f := &follower{path: path}
	timer := pollTimer{fast: c.Policy.fastPoll(), slow: c.Policy.slowPoll()}
	atLineStart := true
	for {
		stopped := closed(stop)
		poll, err := c.readTo(ctx, f, w, stopped)
		if err != nil && poll.fresh == 0 {
			if ctx.Err() != nil {
				return f.offset, ctx.Err()
			}
			if !retryable(err) {
				return f.offset, fmt.Errorf("follow %s: %w", path, err)
			}
			c.logf("follow %s: %v (will read again)", path, err)
			if err := timer.wait(ctx, timer.next(false), stop, stopped); err != nil {
				return f.offset, err
			}
			continue // a failed read proves nothing about "nothing new"
		}
		if err != nil {
			// Cut short after passing on real bytes: go on from there.
			if ctx.Err() != nil {
				return f.offset, ctx.Err()
			}
			if !retryable(err) {
				return f.offset, fmt.Errorf("follow %s: %w", path, err)
			}
			c.logf("follow %s: %v (reading on from byte %d)", path, err, f.offset)
			continue
		}
		if poll.restarted {
			marker := truncatedMarker(path)
			if !atLineStart {
				marker = "\n" + marker
			}
			if _, err := io.WriteString(w, marker); err != nil {
				return f.offset, err
			}
			atLineStart = true
			continue
		}
		fresh := poll.fresh
		if fresh > 0 {
			atLineStart = f.tail[len(f.tail)-1] == '\n'
		}
		if fresh == 0 && stopped {
			return f.offset, nil
		}
		if fresh > 0 && poll.size > f.offset {
			continue // more is waiting: the read was capped at followChunk
		}
		if err := timer.wait(ctx, timer.next(fresh > 0), stop, stopped); err != nil {
			return f.offset, err
		}
	}
}

// readTo runs one poll for f: the file's size, then its bytes from
// f.from() (at most followChunk new ones), the fresh ones passed on to w
// as they arrive.
//
// fresh: the read must start now (the last read after stop); otherwise,
// with several logs followed, a shared read up to half a FastPoll old
// serves.
func (c *Client) readTo(ctx context.Context, f *follower, w io.Writer, fresh bool) (*pollStream, error) {
	if c.followCount() >= 2 {
		return c.readShared(ctx, f, w, fresh)
	}
	cmd := fmt.Sprintf(`f=%s
[ -e "$f" ] || { echo missing; exit 0; }
s=$(stat -L -c %%s -- "$f") || exit 1
echo "$s"
n=$((s - %d)); [ "$n" -gt %d ] && n=%d
[ "$n" -gt 0 ] && dd if="$f" bs=1M iflag=skip_bytes,count_bytes skip=%d count="$n" status=none
exit 0`, shellquote.Quote(f.path), f.from(), followChunk+overlap, followChunk+overlap, f.from())
	poll := newPollStream(f, w)
	var stderr bytes.Buffer
	gctx, guard, release := guardStall(ctx, c.Policy.pollTimeout())
	defer release()
	if err := guard.err(ctx, c.T.Run(gctx, cmd, nil, guard.wrap(poll), &stderr)); err != nil {
		return poll, commandError("read "+f.path, output{"", stderr.String()}, err)
	}
	if !poll.headDone {
		return poll, fmt.Errorf("read %s: no size in the answer", f.path)
	}
	return poll, nil
}

// FollowMany follows every file in dir whose name matches pattern (a shell
// glob such as "*_server_*.log"; files that appear later are picked up) and
// writes their lines to w, each prefixed with the file's role: its name
// without the extension, "[gen_server_0] " for gen_server_0.log. Lines are
// written whole, one Write per file and poll, so that the roles'
// output does not interleave mid-line; a last line without its newline is
// written, newline added, when following ends. It stops like Follow, with
// one remote command per poll for all the files together.
func (c *Client) FollowMany(ctx context.Context, dir, pattern string, w io.Writer, stop <-chan struct{}) error {
	files := map[string]*follower{}
	partial := map[string][]byte{}
	timer := pollTimer{fast: c.Policy.fastPoll(), slow: c.Policy.slowPoll()}
	flushAll := func() error {
		names := make([]string, 0, len(partial))
		for name := range partial {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if len(partial[name]) > 0 {
				line := append(append([]byte(rolePrefix(name)), partial[name]...), '\n')
				if _, err := w.Write(line); err != nil {
					return err
				}
			}
			delete(partial, name)
		}
		return nil
	}
	for {
		stopped := closed(stop)
		reads, err := c.readMany(ctx, dir, pattern, files)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !retryable(err) {
				return fmt.Errorf("follow %s/%s: %w", dir, pattern, err)
			}
			c.logf("follow %s/%s: %v (will read again)", dir, pattern, err)
			if err := timer.wait(ctx, timer.next(false), stop, stopped); err != nil {
				return err
			}
			continue
		}
		gotAny, again := false, false
		for _, r := range reads {
			f := files[r.name]
			if f == nil {
				f = &follower{path: path.Join(dir, r.name)}
				files[r.name] = f
			}
			prefix := rolePrefix(r.name)
			fresh, restarted := f.take(r.size, r.data)
			var out []byte
			if restarted {
				if len(partial[r.name]) > 0 {
					out = append(append(append(out, prefix...), partial[r.name]...), '\n')
				}
				partial[r.name] = nil
				out = append(append(out, prefix...), truncatedMarker(f.path)...)
				again = true
			} else if len(fresh) > 0 {
				gotAny = true
				buf := append(partial[r.name], fresh...)
				last := bytes.LastIndexByte(buf, '\n')
				for _, line := range bytes.SplitAfter(buf[:last+1], []byte("\n")) {
					if len(line) > 0 {
						out = append(append(out, prefix...), line...)
					}
				}
				rest := buf[last+1:]
				if len(rest) >= maxPartialLine {
					out = append(append(append(out, prefix...), rest...), '\n')
					rest = nil
				}
				partial[r.name] = append([]byte(nil), rest...)
				if int64(len(fresh)) == followManyChunk {
					again = true
				}
			}
			if len(out) > 0 {
				if _, err := w.Write(out); err != nil {
					return err
				}
			}
		}
		if again {
			continue
		}
		if !gotAny && stopped {
			return flushAll()
		}
		if err := timer.wait(ctx, timer.next(gotAny), stop, stopped); err != nil {
			return err
		}
	}
}

// rolePrefix names a log by its file name without the extension.
func rolePrefix(name string) string {
	return "[" + strings.TrimSuffix(name, path.Ext(name)) + "] "
}

type manyRead struct {
	name string
	size int64
	data []byte
}

// readMany reads every matching file in one remote command. Names and
// bytes travel base64-encoded, one file per line, so that neither odd file
// names nor a file shrinking between stat and tail can break the framing.
// The pattern is matched with [[ == ]], which globs but never expands or
// runs anything the pattern holds.
func (c *Client) readMany(ctx context.Context, dir, pattern string, files map[string]*follower) ([]manyRead, error) {
	var from strings.Builder
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(&from, " [%s]=%d", shellquote.Quote(name), files[name].from())
	}
	cmd := fmt.Sprintf(`cd -- %s 2>/dev/null || exit 0
pat=%s
declare -A from=(%s )
for f in *; do
  [[ -f $f && $f == $pat ]] || continue
  s=$(stat -L -c %%s -- "$f") || continue
  o=${from[$f]:-0}
  n=$((s - o)); [ "$n" -gt %d ] && n=%d
  printf '%%s %%s ' "$s" "$(printf %%s "$f" | base64 -w0)"
  if [ "$n" -gt 0 ]; then tail -c +$((o + 1)) -- "$f" | head -c "$n" | base64 -w0; fi
  echo
done`, shellquote.Quote(dir), shellquote.Quote(pattern), from.String(), followManyChunk+overlap, followManyChunk+overlap)
	var stdout, stderr bytes.Buffer
	gctx, guard, release := guardStall(ctx, c.Policy.pollTimeout())
	defer release()
	if err := guard.err(ctx, c.T.Run(gctx, cmd, nil, guard.wrap(&stdout), &stderr)); err != nil {
		return nil, commandError("read "+dir+"/"+pattern, output{stdout.String(), stderr.String()}, err)
	}
	var reads []manyRead
	for _, line := range strings.Split(stdout.String(), "\n") {
		if line == "" {
			continue
		}
		fields := strings.SplitN(line, " ", 3)
		if len(fields) != 3 {
			return nil, fmt.Errorf("read %s/%s: malformed answer line %q", dir, pattern, firstChars(line, 100))
		}
		size, err1 := strconv.ParseInt(fields[0], 10, 64)
		name, err2 := base64.StdEncoding.DecodeString(fields[1])
		data, err3 := base64.StdEncoding.DecodeString(fields[2])
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("read %s/%s: malformed answer line %q", dir, pattern, firstChars(line, 100))
		}
		reads = append(reads, manyRead{name: string(name), size: size, data: data})
	}
	return reads, nil
}

// followCount is how many job logs this Client follows right now.
func (c *Client) followCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.following
}

// readShared is readTo's poll when several logs are followed at once (the
// jobs of a test list), in the way the watches share their Slurm queries
// (shared.go): a poll takes its file's part of a shared read that started
// no more than half a FastPoll ago, if there is one; otherwise it starts
// one, which reads every followed file from its follower's offset in one
// remote command (the polls that come within a quarter of FastPoll join
// it). So one round trip serves the polls of all the logs. The answer is
// what readTo's own command prints, handed over whole rather than
// streamed (at most followChunk bytes per file).
func (c *Client) readShared(ctx context.Context, f *follower, w io.Writer, fresh bool) (*pollStream, error) {
	from := strconv.FormatInt(f.from(), 10)
	c.mu.Lock()
	if c.followKeys == nil {
		c.followKeys = map[string]string{}
	}
	c.followKeys[f.path] = from
	c.mu.Unlock()
	others := func() map[string]string {
		c.mu.Lock()
		defer c.mu.Unlock()
		return maps.Clone(c.followKeys)
	}
	together := func(int) bool { return c.followCount() >= 2 }
	maxAge := c.Policy.fastPoll() / 2
	if fresh {
		maxAge = 0
	}
	raw, _, err := c.logReads.get(ctx, time.Now(), f.path, from, maxAge, c.Policy.fastPoll()/4, others, together, sleep, c.readLogs)
	poll := newPollStream(f, w)
	if err != nil {
		return poll, err
	}
	if _, err := poll.Write(raw); err != nil {
		return poll, err
	}
	if !poll.headDone {
		return poll, fmt.Errorf("read %s: no size in the answer", f.path)
	}
	// A read that another poll starts meanwhile reads on from here.
	c.mu.Lock()
	c.followKeys[f.path] = strconv.FormatInt(f.from(), 10)
	c.mu.Unlock()
	return poll, nil
}

// readLogs reads the files of one shared round, each from its offset
// (keys: path → offset), in one remote command. Each file's answer is
// what readTo's command prints for it: "missing", or its size and the
// bytes from the offset (base64 on the wire, one line per file).
func (c *Client) readLogs(ctx context.Context, keys map[string]string) map[string]result[[]byte] {
	paths := sortedIDs(keys)
	var cmd strings.Builder
	fmt.Fprintf(&cmd, `r() {
  [ -e "$2" ] || { echo "$1 missing"; return; }
  s=$(stat -L -c %%s -- "$2") || { echo "$1 error"; return; }
  n=$((s - $3)); [ "$n" -gt %d ] && n=%d
  printf '%%s %%s ' "$1" "$s"
  [ "$n" -gt 0 ] && dd if="$2" bs=1M iflag=skip_bytes,count_bytes skip="$3" count="$n" status=none | base64 -w0
  echo
}
`, followChunk+overlap, followChunk+overlap)
	for i, p := range paths {
		fmt.Fprintf(&cmd, "r %d %s %s\n", i, shellquote.Quote(p), keys[p])
	}
	res := make(map[string]result[[]byte], len(paths))
	fail := func(err error) map[string]result[[]byte] {
		for _, p := range paths {
			res[p] = result[[]byte]{err: err}
		}
		return res
	}
	var stdout, stderr bytes.Buffer
	gctx, guard, release := guardStall(ctx, c.Policy.pollTimeout())
	defer release()
	if err := guard.err(ctx, c.T.Run(gctx, cmd.String(), nil, guard.wrap(&stdout), &stderr)); err != nil {
		return fail(commandError(fmt.Sprintf("read %d job logs", len(paths)), output{"", stderr.String()}, err))
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if line == "" {
			continue
		}
		fields := strings.SplitN(line, " ", 3)
		i, err := strconv.Atoi(fields[0])
		if err != nil || i < 0 || i >= len(paths) || len(fields) < 2 {
			return fail(fmt.Errorf("read %d job logs: malformed answer line %q", len(paths), firstChars(line, 100)))
		}
		p := paths[i]
		switch {
		case fields[1] == "missing":
			res[p] = result[[]byte]{v: []byte("missing\n")}
		case fields[1] == "error" || len(fields) != 3:
			res[p] = result[[]byte]{err: fmt.Errorf("read %s: stat failed on the login node", p)}
		default:
			data, err := base64.StdEncoding.DecodeString(fields[2])
			if err != nil {
				return fail(fmt.Errorf("read %d job logs: malformed answer line %q", len(paths), firstChars(line, 100)))
			}
			res[p] = result[[]byte]{v: append([]byte(fields[1]+"\n"), data...)}
		}
	}
	for _, p := range paths {
		if _, ok := res[p]; !ok {
			res[p] = result[[]byte]{err: fmt.Errorf("read %s: no answer for it in the shared read", p)}
		}
	}
	return res
}
