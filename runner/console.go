package runner

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/log"

	"github.com/disagg-runner/disagg-runner/internal/termtext"
)

// Console is how a run talks to the person or machine reading it: stage
// headers with durations, state changes and the verdict go to Log; the job
// log itself is streamed to Out untouched (so stdout of a run is the job
// log, byte for byte, and can be diffed against the file on the cluster).
type Console struct {
	Log *log.Logger
	Out io.Writer
	// Err is where the runner's own lines go, for output that is not one
	// log line (a table); with JSON logs, such output is left out.
	Err  io.Writer
	json bool
	// Secrets are values never to be printed (key passphrases, tokens);
	// they are masked in everything the console writes.
	Secrets []string
	mu      sync.Mutex
	// row is the test's line on the board of a run of several (nil:
	// none); it sees the job's states, its log and its verdict.
	row *BoardRow
}

// NewConsole makes a console writing runner lines to logw (text or JSON)
// and the job log to out. charmbracelet/log only colours a terminal, so
// Jenkins' console gets plain text.
func NewConsole(out, logw io.Writer, jsonFormat bool, secrets []string) *Console {
	opts := log.Options{ReportTimestamp: true, TimeFormat: time.TimeOnly}
	if jsonFormat {
		opts.Formatter = log.JSONFormatter
		opts.TimeFormat = time.RFC3339
	}
	var kept []string
	for _, s := range secrets {
		if len(s) >= 4 { // masking "a" everywhere would mangle the log
			kept = append(kept, s)
		}
	}
	c := &Console{Secrets: kept, json: jsonFormat}
	c.Err = &maskingWriter{w: logw, c: c}
	c.Log = log.NewWithOptions(c.Err, opts)
	// A message may quote an input: its control bytes are escaped, so
	// that they cannot act on the terminal or forge a line (the logger
	// escapes values itself, and JSON escapes everything).
	styles := log.DefaultStyles()
	styles.Message = styles.Message.Transform(termtext.Line)
	c.Log.SetStyles(styles)
	c.Out = &maskingWriter{w: out, c: c, lineBuffered: true}
	return c
}

// ForTest is the console of one test in a run of several: its lines are
// prefixed with the test's name, and its job log goes to stdout only
// when it is the one followed (each log is kept in its results folder
// either way).
//
// row, when not nil, is the test's line on the run's board.
func (c *Console) ForTest(name string, follow bool, row *BoardRow) *Console {
	t := &Console{Log: c.Log.WithPrefix(name), Out: io.Discard, Err: c.Err, json: c.json, Secrets: c.Secrets, row: row}
	if follow {
		t.Out = c.Out
	}
	return t
}

// decided puts a test's verdict on its board line, if it has one.
func (c *Console) decided(o *Outcome) {
	if c.row != nil {
		c.row.decided(o.ExitCode, o.Reason)
	}
}

// Stage logs a stage header and returns a function that logs its end with
// the duration.
func (c *Console) Stage(n int, name string) func(err error) {
	start := time.Now()
	c.Log.Info(fmt.Sprintf("==> stage %d/8: %s", n, name))
	return func(err error) {
		d := time.Since(start).Round(time.Millisecond)
		if err != nil {
			c.Log.Error(fmt.Sprintf("<== stage %d/8: %s failed after %s", n, name, d))
			return
		}
		c.Log.Info(fmt.Sprintf("<== stage %d/8: %s done in %s", n, name, d))
	}
}

func (c *Console) mask(b []byte) []byte {
	for _, s := range c.Secrets {
		if bytes.Contains(b, []byte(s)) { // ReplaceAll copies even when nothing matches
			b = bytes.ReplaceAll(b, []byte(s), []byte("****"))
		}
	}
	return MaskAssignments(b)
}

// secretParts are the name parts (compared in any case) that say a value
// is secret wherever they stand in the name; KEY says so only as the last
// part (NGC_API_KEY, SSH_KEY, but not KEY_COUNT or MAX_KEY_LEN). A part
// is matched whole: MAX_TOKENS, AUTHOR, KEYBOARD and BYPASS are ordinary.
// PWD is left out: it is the working folder.
var secretParts = map[string]bool{
	"TOKEN": true, "SECRET": true, "SECRETS": true, "PASSWORD": true, "PASSWD": true, "PASSPHRASE": true, "PASS": true,
	"CREDENTIAL": true, "CREDENTIALS": true, "CRED": true, "CREDS": true, "WEBHOOK": true, "COOKIE": true, "COOKIES": true,
	"AUTH": true, "AUTHORIZATION": true, "BEARER": true, "SESSION": true, "PRIVATE": true, "APIKEY": true,
}

// SecretName reports whether a variable or option name says its value is
// secret: one of its parts (split at _ and -, and where a lower-case
// letter or digit is followed by an upper-case one, so apiKey is api,Key)
// is in secretParts, or its last part is KEY.
func SecretName(name string) bool {
	parts := nameParts(name)
	for i, p := range parts {
		up := strings.ToUpper(p)
		if secretParts[up] || up == "KEY" && i == len(parts)-1 {
			return true
		}
	}
	return false
}

func nameParts(name string) []string {
	var parts []string
	start := 0
	flush := func(end int) {
		if end > start {
			parts = append(parts, name[start:end])
		}
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_' || c == '-':
			flush(i)
			start = i + 1
		case i > start && isUpper(c) && (isLower(name[i-1]) || isDigit(name[i-1])):
			flush(i)
			start = i
		case i > start+1 && isLower(c) && isUpper(name[i-1]) && isUpper(name[i-2]):
			// OAuthToken: "OAuth" splits as O, Auth.
			flush(i - 1)
			start = i - 1
		}
	}
	flush(len(name))
	return parts
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isNameByte(c byte) bool { return isUpper(c) || isLower(c) || isDigit(c) || c == '_' || c == '-' }

// MaskAssignments replaces the value of every NAME=value whose name says
// it is secret (SecretName) with ****: the whole shell word (see
// valueEnd). Such values come from configs and scripts, not from our
// environment, so only their name can give them away. A name that is not
// secret does not hide what follows: in pytestCommand=HF_TOKEN=x the
// token is still found.
func MaskAssignments(b []byte) []byte {
	out, _ := maskAssignments(b)
	return out
}

// maskAssignments is MaskAssignments, and whether that changed anything:
// a value masked already (HF_TOKEN=****) is not a change, so that a file
// holding only such values is not rewritten.
func maskAssignments(b []byte) ([]byte, bool) {
	if bytes.IndexByte(b, '=') < 0 {
		return b, false
	}
	var out []byte
	last := 0
	eachSecretAssignment(b, func(_, eq, end int) {
		out = append(out, b[last:eq+1]...)
		out = append(out, "****"...)
		last = end
	})
	if out == nil {
		return b, false
	}
	out = append(out, b[last:]...)
	return out, !bytes.Equal(out, b)
}

// eachSecretAssignment calls f, in order, for every NAME=value in b whose
// name says it is secret: the name's start, the '=' and the value's end.
// A value is not searched for further assignments (it is masked whole).
func eachSecretAssignment(b []byte, f func(name, eq, end int)) {
	for i := 0; i < len(b); i++ {
		if b[i] != '=' {
			continue
		}
		j := nameStart(b, i)
		if j == i || !SecretName(string(b[j:i])) {
			continue
		}
		end := valueEnd(b, i+1)
		f(j, i, end)
		i = end - 1
	}
}

// pieceCut is where a piece of a line too long to mask whole ends; the
// rest of it starts the next piece. A cut must not split a secret
// assignment, nor a name that an '=' in the next piece could make one. So
// the piece ends before the first secret assignment whose value stops at
// a quote the piece does not close (the quote may close in the next
// piece, and all that comes before it is then that value), else before
// the last secret assignment, else before a trailing run of name bytes.
// A cut at 0 would not move on: then the piece is taken whole, which
// splits only an assignment longer than a piece.
func pieceCut(b []byte) int {
	open, last, lastEnd := -1, -1, -1
	eachSecretAssignment(b, func(name, _, end int) {
		if open < 0 && end < len(b) && (b[end] == '"' || b[end] == '\'') {
			open = name
		}
		last, lastEnd = name, end
	})
	switch {
	case open > 0:
		return open
	case last > 0:
		return last
	case last == 0 && lastEnd == len(b):
		return len(b)
	}
	if k := nameStart(b, len(b)); k > 0 {
		return k
	}
	return len(b)
}

// nameStart is where the run of name bytes that ends at i starts (i when
// there is none).
func nameStart(b []byte, i int) int {
	for i > 0 && isNameByte(b[i-1]) {
		i--
	}
	return i
}

// valueEnd is where the value starting at k ends: a shell word, whose
// quoted parts may hold blanks (HF_TOKEN="a b"c is one value). A value
// that opens a quote the line never closes runs to the end of the line;
// a quote the line never closes after the value began is someone else's
// (the closing quote of set -x's 'pytestCommand=... TOKEN=t'), and the
// value ends before it.
func valueEnd(b []byte, k int) int {
	e := k
	for e < len(b) {
		c := b[e]
		switch {
		case c == '"' || c == '\'':
			closing := -1
			for j := e + 1; j < len(b) && b[j] != '\n'; j++ {
				if b[j] == c {
					closing = j
					break
				}
			}
			switch {
			case closing >= 0:
				e = closing + 1
			case e == k:
				for e < len(b) && b[e] != '\n' {
					e++
				}
				return e
			default:
				return e
			}
		case strings.IndexByte(" \t\n\r\v\f;&|", c) >= 0:
			return e
		default:
			e++
		}
	}
	return e
}

// maskingWriter masks secrets. With lineBuffered it holds back a partial
// line so that a secret split across two writes is still caught; Flush
// writes what is held (the job log's last line, at the end of the run).
type maskingWriter struct {
	w            io.Writer
	c            *Console
	lineBuffered bool
	pending      []byte
}

func (m *maskingWriter) Write(p []byte) (int, error) {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	if !m.lineBuffered {
		if _, err := m.w.Write(m.c.mask(p)); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	last := bytes.LastIndexByte(p, '\n')
	if last < 0 {
		m.pending = append(m.pending, p...)
		return len(p), nil
	}
	// Masking works a line at a time, so the held-back line is completed
	// and written on its own, and the whole lines after it straight from
	// p: a job log of gigabytes passes through without being copied.
	first := bytes.IndexByte(p, '\n')
	if len(m.pending) > 0 {
		m.pending = append(m.pending, p[:first+1]...)
		if _, err := m.w.Write(m.c.mask(m.pending)); err != nil {
			return 0, err
		}
	} else {
		first = -1
	}
	if whole := p[first+1 : last+1]; len(whole) > 0 {
		if _, err := m.w.Write(m.c.mask(whole)); err != nil {
			return 0, err
		}
	}
	m.pending = append(m.pending[:0], p[last+1:]...)
	return len(p), nil
}

// Flush writes a held-back partial line.
func (m *maskingWriter) Flush() {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	if len(m.pending) > 0 {
		m.w.Write(m.c.mask(m.pending))
		m.pending = nil
	}
}

// Table writes multi-line output beside the log lines, unless the log
// is JSON (whose readers expect one object a line): then it reports false
// and the caller logs a line instead.
func (c *Console) Table(write func(io.Writer)) bool {
	if c.json {
		return false
	}
	write(c.Err)
	return true
}

func isName(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isNameByte(s[i]) {
			return false
		}
	}
	return s != ""
}

// Flush writes anything the job-log stream still holds.
func (c *Console) Flush() {
	if f, ok := c.Out.(interface{ Flush() }); ok {
		f.Flush()
	}
}

// redactExports masks secret values in a generated script for printing:
// whole exports of secret-named variables, and secret-named assignments
// inside other values (a config's benchmark_env_var="HF_TOKEN=...").
func redactExports(script []byte) []byte {
	lines := strings.Split(string(script), "\n")
	for i, l := range lines {
		t := strings.TrimSpace(l)
		name, _, ok := strings.Cut(strings.TrimPrefix(t, "export "), "=")
		if ok && isName(name) && SecretName(name) {
			lines[i] = l[:strings.Index(l, "=")+1] + "****"
			continue
		}
		lines[i] = string(MaskAssignments([]byte(l)))
	}
	return []byte(strings.Join(lines, "\n"))
}
