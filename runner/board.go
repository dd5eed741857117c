package runner

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/disagg-runner/disagg-runner/internal/termtext"
	"github.com/disagg-runner/disagg-runner/sbatch"
)

// Board is stdout of a run of several tests when no test's log is
// followed there: one status line per test (state, time in that state,
// the job log's last line). Live, on a terminal, the lines are redrawn in
// place every second and the runner's own lines scroll above them;
// otherwise each state change is one plain line, for a CI console.
type Board struct {
	mu    sync.Mutex
	w     io.Writer
	live  bool
	width int // columns of the terminal (live); lines are cut to fit
	// height is the terminal's rows (live): a board taller than the
	// screen cannot be redrawn in place, and is plain lines instead.
	height int
	now    func() time.Time
	rows   []*BoardRow
	drawn  int // lines of the last frame, to move back over (live)
	nameW  int
	stop   chan struct{}
	ended  chan struct{}
}

// BoardRow is one test's line on the board.
type BoardRow struct {
	b     *Board
	test  string
	state string // "waiting" until submitted, then Slurm's state
	note  string // nodes, pending reason, or the verdict
	since time.Time
	last  string // the job log's last complete line
	part  []byte // the job log's line being written
}

// NewBoard makes the board of a run on w. live: w is a terminal of width
// columns and height rows (0: 80 by 24).
func NewBoard(w io.Writer, live bool, width, height int) *Board {
	if width <= 0 {
		width = 80
	}
	if height <= 0 {
		height = 24
	}
	return &Board{w: w, live: live, width: width, height: height, now: time.Now}
}

// Row adds a test's line.
func (b *Board) Row(test string) *BoardRow {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := &BoardRow{b: b, test: test, state: "waiting", since: b.now()}
	b.rows = append(b.rows, r)
	b.nameW = max(b.nameW, len(test))
	return r
}

// Start draws the board and, live, redraws it every second (the times
// move) until Stop.
func (b *Board) Start() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.live && len(b.rows) >= b.height {
		b.live = false
	}
	if !b.live || b.stop != nil {
		return
	}
	stop, ended := make(chan struct{}), make(chan struct{})
	b.stop, b.ended = stop, ended
	b.draw()
	go func() {
		defer close(ended)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				b.mu.Lock()
				b.draw()
				b.mu.Unlock()
			}
		}
	}()
}

// Stop draws the final frame and leaves it on the screen: what follows
// (the tables, the verdicts) is printed below it.
func (b *Board) Stop() {
	b.mu.Lock()
	stop, ended := b.stop, b.ended
	b.stop = nil
	b.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	<-ended
	b.mu.Lock()
	b.draw()
	b.drawn = 0
	b.mu.Unlock()
}

// Above is w for lines that must scroll above a live board (the runner's
// own lines on the same terminal); a board that is not live passes them
// through.
func (b *Board) Above(w io.Writer) io.Writer { return &aboveBoard{b: b, w: w} }

type aboveBoard struct {
	b *Board
	w io.Writer
}

func (a *aboveBoard) Write(p []byte) (int, error) {
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn == 0 {
		return a.w.Write(p)
	}
	b.erase()
	n, err := a.w.Write(p)
	b.draw()
	return n, err
}

// erase moves the cursor back to the frame's first line and clears to the
// end of the screen.
func (b *Board) erase() {
	if b.drawn > 0 {
		fmt.Fprintf(b.w, "\x1b[%dA\r\x1b[J", b.drawn)
		b.drawn = 0
	}
}

func (b *Board) draw() {
	var f bytes.Buffer
	if b.drawn > 0 {
		fmt.Fprintf(&f, "\x1b[%dA", b.drawn)
	}
	for _, r := range b.rows {
		f.WriteString("\r\x1b[2K")
		f.WriteString(fit(r.text(b.now(), b.nameW), b.width-1))
		f.WriteByte('\n')
	}
	b.w.Write(f.Bytes())
	b.drawn = len(b.rows)
}

// text is the row's line: test, state, time in the state, and the note or
// the log's last line.
func (r *BoardRow) text(now time.Time, nameW int) string {
	tail := r.note
	if r.last != "" && (r.state == "RUNNING" || r.note == "") {
		tail = r.last
	}
	return strings.TrimRight(fmt.Sprintf("%-*s  %-11s %7s  %s", nameW, r.test, r.state, clock(now.Sub(r.since)), tail), " ")
}

// clock is a duration as a person reads it on a status line: 42s, 3m07s,
// 1h02m.
func clock(d time.Duration) string {
	s := int(max(d, 0) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	default:
		return fmt.Sprintf("%dh%02dm", s/3600, s/60%60)
	}
}

// fit cuts s to n runes, marking the cut.
func fit(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	rs := []rune(s)
	return string(rs[:max(n-1, 0)]) + "…"
}

// changed records the job's state; not live, a change is one line.
func (r *BoardRow) changed(st sbatch.JobState) {
	note := ""
	switch st.State {
	case "PENDING":
		if st.Reason != "" {
			note = "(" + st.Reason + ")"
		}
	case "RUNNING", "COMPLETING":
		note = "on " + st.NodeList
	default:
		if st.Terminal() {
			note = fmt.Sprintf("exit code %d:%d", st.ExitCode, st.Signal)
		}
	}
	r.set(st.State, note)
}

// submitted records the job's id.
func (r *BoardRow) submitted(id sbatch.JobID) { r.set("SUBMITTED", "job "+string(id)) }

// decided records the test's verdict.
func (r *BoardRow) decided(code int, reason string) {
	state := "PASSED"
	if code != 0 {
		state = fmt.Sprintf("EXIT %d", code)
	}
	r.b.mu.Lock()
	r.last = "" // the verdict, not the log, is the row's last word
	r.b.mu.Unlock()
	r.set(state, termtext.OneLine(reason))
}

func (r *BoardRow) set(state, note string) {
	b := r.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if state == r.state && note == r.note {
		return
	}
	if state != r.state {
		r.since = b.now()
	}
	r.state, r.note = state, note
	if b.live {
		if b.drawn > 0 {
			b.draw()
		}
		return
	}
	line := fmt.Sprintf("%s %s: %s", b.now().Format(time.TimeOnly), r.test, state)
	if note != "" {
		line += " " + note
	}
	fmt.Fprintln(b.w, line)
}

// Write takes the job log as it streams and keeps its last non-blank
// line.
func (r *BoardRow) Write(p []byte) (int, error) {
	b := r.b
	b.mu.Lock()
	defer b.mu.Unlock()
	r.part = append(r.part, p...)
	if i := bytes.LastIndexByte(r.part, '\n'); i >= 0 {
		lines := r.part[:i]
		if j := bytes.LastIndexByte(lines, '\n'); j >= 0 {
			lines = lines[j+1:]
		}
		if s := strings.TrimSpace(termtext.OneLine(string(lines))); s != "" {
			r.last = s
		}
		r.part = append(r.part[:0], r.part[i+1:]...)
	}
	if len(r.part) > 4096 { // a line without end is not kept whole
		r.part = r.part[:0]
	}
	return len(p), nil
}
