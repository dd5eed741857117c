package runner

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
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
	// Secrets are values never to be printed (key passphrases, tokens);
	// they are masked in everything the console writes.
	Secrets []string
	mu      sync.Mutex
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
	c := &Console{Secrets: kept}
	c.Log = log.NewWithOptions(&maskingWriter{w: logw, c: c}, opts)
	// A message may quote an input: its control bytes are escaped, so
	// that they cannot act on the terminal or forge a line (the logger
	// escapes values itself, and JSON escapes everything).
	styles := log.DefaultStyles()
	styles.Message = styles.Message.Transform(termtext.Line)
	c.Log.SetStyles(styles)
	c.Out = &maskingWriter{w: out, c: c, lineBuffered: true}
	return c
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
		b = bytes.ReplaceAll(b, []byte(s), []byte("****"))
	}
	return MaskAssignments(b)
}

// secretAssignment is NAME=value where a part of the name between
// underscores says the value is secret (HF_TOKEN=..., NGC_API_KEY="...",
// export MY_PASSWORD='...', but not MAX_TOKENS=...): such values
// come from configs and scripts, not from our environment, so only their
// name can give them away.
var secretAssignment = regexp.MustCompile(`\b((?:[A-Za-z0-9]+_)*(?:TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|API_KEY|PRIVATE_KEY|ACCESS_KEY)(?:_[A-Za-z0-9]+)*)=(?:"[^"\n]*"|'[^'\n]*'|[^\s"';&|]*)`)

// MaskAssignments replaces the values of secret-named assignments with ****.
func MaskAssignments(b []byte) []byte {
	if !bytes.Contains(b, []byte("=")) {
		return b
	}
	return secretAssignment.ReplaceAll(b, []byte("${1}=****"))
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
	m.pending = append(m.pending, p...)
	if i := bytes.LastIndexByte(m.pending, '\n'); i >= 0 {
		out := m.c.mask(m.pending[:i+1])
		m.pending = append([]byte(nil), m.pending[i+1:]...)
		if _, err := m.w.Write(out); err != nil {
			return 0, err
		}
	}
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
		if ok && secretAssignment.MatchString(name+"=x") {
			lines[i] = l[:strings.Index(l, "=")+1] + "****"
			continue
		}
		lines[i] = string(MaskAssignments([]byte(l)))
	}
	return []byte(strings.Join(lines, "\n"))
}
