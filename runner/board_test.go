package runner

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/disagg-runner/disagg-runner/sbatch"
)

// screen is a terminal as far as the board drives one: text, line feeds,
// carriage returns, cursor up (CSI n A), erase line (CSI 2 K) and erase to
// the end of the screen (CSI J). What it shows is what a person would see.
type screen struct {
	mu        sync.Mutex
	lines     [][]rune
	row, col  int
	unhandled []string
}

var csi = regexp.MustCompile(`^\x1b\[(\d*)([A-Za-z])`)

func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < len(p); {
		if m := csi.FindSubmatch(p[i:]); m != nil {
			n, _ := strconv.Atoi(string(m[1]))
			switch string(m[2]) {
			case "A":
				s.row = max(s.row-max(n, 1), 0)
			case "K":
				s.grow()
				s.lines[s.row] = nil
			case "J":
				s.grow()
				s.lines = s.lines[:s.row+1]
				s.lines[s.row] = s.lines[s.row][:min(s.col, len(s.lines[s.row]))]
			default:
				s.unhandled = append(s.unhandled, string(m[0]))
			}
			i += len(m[0])
			continue
		}
		r := []rune(string(p[i:]))[0]
		i += len(string(r))
		switch r {
		case '\n':
			s.row, s.col = s.row+1, 0
		case '\r':
			s.col = 0
		default:
			s.grow()
			line := s.lines[s.row]
			for len(line) <= s.col {
				line = append(line, ' ')
			}
			line[s.col] = r
			s.lines[s.row], s.col = line, s.col+1
		}
	}
	return len(p), nil
}

func (s *screen) grow() {
	for len(s.lines) <= s.row {
		s.lines = append(s.lines, nil)
	}
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.lines {
		out = append(out, strings.TrimRight(string(l), " "))
	}
	return strings.TrimRight(strings.Join(out, "\n"), "\n")
}

func fixedClock(t0 time.Time, at *time.Duration) func() time.Time {
	return func() time.Time { return t0.Add(*at) }
}

// TestBoardLive: the runner's lines scroll above the board, the board is
// redrawn in place (no frame left behind), and its final frame stays
// above what is printed after it.
func TestBoardLive(t *testing.T) {
	tty := &screen{}
	b := NewBoard(tty, true, 60, 10)
	var at time.Duration
	b.now = fixedClock(time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC), &at)
	logs := b.Above(tty)
	first, second := b.Row("tc_ctx1_gen1_2nodes"), b.Row("tc_gen_only")
	b.Start()
	logs.Write([]byte("01:00:00 INFO stage 5 done\n"))
	first.submitted("41")
	at = 2 * time.Second
	first.changed(sbatch.JobState{ID: "41", State: "RUNNING", NodeList: "node[1-2]", Known: true})
	at = 65 * time.Second
	first.Write([]byte("standin log line 1/3\nstandin log line 2/3\nstandin log li"))
	second.changed(sbatch.JobState{ID: "42", State: "PENDING", Reason: "Resources", Known: true})
	logs.Write([]byte("01:01:05 INFO job PENDING\n"))
	at = 70 * time.Second
	second.decided(13, "sbatch refused the job:\nInvalid account")
	first.Write([]byte(strings.Repeat("x", 100) + "\n"))
	b.Stop()
	tty.Write([]byte("run verdict: exit 13\n"))

	want := strings.Join([]string{
		"01:00:00 INFO stage 5 done",
		"01:01:05 INFO job PENDING",
		// The partial line and the next chunk are one line, cut to the
		// width.
		"tc_ctx1_gen1_2nodes  RUNNING       1m08s  standin log lixx…",
		"tc_gen_only          EXIT 13          0s  sbatch refused t…",
		"run verdict: exit 13",
	}, "\n")
	if got := tty.String(); got != want {
		t.Errorf("the terminal shows\n%s\nwant\n%s", got, want)
	}
	if len(tty.unhandled) > 0 {
		t.Errorf("escape sequences the screen does not know: %q", tty.unhandled)
	}
}

// TestBoardPlain: not on a terminal, each change is one line and nothing
// is redrawn; the runner's lines pass through untouched.
func TestBoardPlain(t *testing.T) {
	var out bytes.Buffer
	b := NewBoard(&out, false, 0, 0)
	var at time.Duration
	b.now = fixedClock(time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC), &at)
	var logs bytes.Buffer
	above := b.Above(&logs)
	row := b.Row("tc_a")
	b.Start()
	row.submitted("7")
	above.Write([]byte("a runner line\n"))
	at = time.Minute
	row.changed(sbatch.JobState{ID: "7", State: "RUNNING", NodeList: "node1", Known: true})
	row.changed(sbatch.JobState{ID: "7", State: "RUNNING", NodeList: "node1", Known: true}) // no change, no line
	row.Write([]byte("a log line\n"))
	row.changed(sbatch.JobState{ID: "7", State: "COMPLETED", Known: true})
	row.decided(0, "pytest passed")
	b.Stop()
	want := "01:00:00 tc_a: SUBMITTED job 7\n" +
		"01:01:00 tc_a: RUNNING on node1\n" +
		"01:01:00 tc_a: COMPLETED exit code 0:0\n" +
		"01:01:00 tc_a: PASSED pytest passed\n"
	if out.String() != want {
		t.Errorf("stdout\n%s\nwant\n%s", out.String(), want)
	}
	if logs.String() != "a runner line\n" || strings.Contains(out.String(), "\x1b") {
		t.Errorf("runner lines %q; stdout has escapes: %v", logs.String(), strings.Contains(out.String(), "\x1b"))
	}
}

func TestClock(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0s", 59 * time.Second: "59s", 61 * time.Second: "1m01s", 3725 * time.Second: "1h02m", -time.Second: "0s"} {
		if got := clock(d); got != want {
			t.Errorf("clock(%s) = %q, want %q", d, got, want)
		}
	}
}

// TestBoardTallerThanTheScreen: a board that cannot be redrawn in place
// (more rows than the terminal has) is plain lines.
func TestBoardTallerThanTheScreen(t *testing.T) {
	tty := &screen{}
	b := NewBoard(tty, true, 80, 3)
	var at time.Duration
	b.now = fixedClock(time.Date(2026, 11, 28, 1, 0, 0, 0, time.UTC), &at)
	var rows []*BoardRow
	for _, name := range []string{"a", "b", "c"} {
		rows = append(rows, b.Row(name))
	}
	b.Start()
	rows[2].submitted("3")
	b.Stop()
	if got := tty.String(); got != "01:00:00 c: SUBMITTED job 3" {
		t.Errorf("the terminal shows %q", got)
	}
}
