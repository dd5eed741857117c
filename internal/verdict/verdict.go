// Package verdict decides the runner's exit code from what a finished job
// left behind. It is pure: the caller gathers the evidence (final Slurm
// state, job log, junit XML) and gets back a code and a reason.
//
// Slurm's own ExitCode cannot decide success: TIMEOUT, NODE_FAIL and a
// scancel all show 0:0, and a failing step does not fail a job whose script
// ignores it. So pytest's code is taken from the most trusted source that
// has it, and success needs both pytest's 0 and the state COMPLETED.
package verdict

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/disagg-runner/disagg-runner/internal/exitcode"
	"github.com/disagg-runner/disagg-runner/internal/lazyre"
	"github.com/disagg-runner/disagg-runner/internal/needle"
)

// Evidence is what the runner collected about a finished job.
type Evidence struct {
	State       string // Slurm base state: COMPLETED, FAILED, CANCELLED, TIMEOUT, ...
	CancelledBy string // "CANCELLED by <uid>" as sacct reports it, when known
	// Log is what job-output.log (the benchmark step writes there) says,
	// as ReadJobLog found it; the zero value is a missing log.
	Log   LogFacts
	JUnit [][]byte
	// Interrupt is the signal that stopped the runner, which then
	// cancelled the job; nil when none did.
	Interrupt os.Signal
	// InterruptedLate says the signal came after the job's end was
	// learned (while collecting): nothing was cancelled, and the run
	// exits with the signal's code all the same.
	InterruptedLate bool
	// Lost is why following the job failed before its end was learned;
	// LostLoginNode says the login node stayed out of reach for the whole
	// reconnect budget (the job was left running, not known to fail).
	Lost          error
	LostLoginNode bool
	// PerfRegressed says a gated benchmark metric regressed against the
	// baseline (PerfText says how); it fails a passing run only with
	// FailOnRegression.
	PerfRegressed    bool
	PerfText         string
	FailOnRegression bool
}

// Verdict is the exit code and a one-line reason.
type Verdict struct {
	Code       int
	PytestCode int    // -1 when no source had it
	Source     string // where PytestCode came from
	Reason     string
}

var (
	// The run script's last line: "Rank0 Pytest finished execution with exit
	// code 1". The whole phrase, because the v2 precheck gate copies lines
	// such as "Rank0 cache-transceiver precheck finished with exit code 1"
	// into the same log.
	rankLine = lazyre.New(`\bRank0 Pytest finished execution with exit code (\d+)\s*$`)
	// srun's report of a failing task of the foreground (benchmark) step.
	srunTaskExit = lazyre.New(`^srun: error: \S+: task 0: Exited with exit code (\d+)\s*$`)
)

// Today's upstream draft, when the benchmark fails or the job is
// signalled, dumps the tail of every role's log into the job log between
// these lines; each role's log ends with that role's own Rank0 line, which
// must never be taken for the benchmark's.
//
// The precheck gate copies the tails of failed precheck steps' logs the
// same way, between "----- last lines of <log> -----" and "----- end of
// <log> -----": srun's reports of those steps are not the benchmark's.
const (
	dumpStart     = "===== Per-role log tails"
	dumpEnd       = "===== End of per-role log tails ====="
	copyStart     = "----- last lines of "
	copyEndPrefix = "----- end of "
)

// LogFacts are what the job log says of the benchmark step: the last
// Rank0 line and srun report outside dumped role logs (-1: none).
type LogFacts struct {
	read       bool
	rank, srun int
	dumps      int
	err        error
}

// maxLine bounds the bytes of one line looked at; longer lines (binary
// output, say) cannot be the short lines searched for and are skipped.
const maxLine = 64 << 10

// ReadJobLog reads the job log once, line by line, in constant memory
// (a job log may be gigabytes).
func ReadJobLog(r io.Reader) LogFacts {
	sc := NewLogScanner()
	_, err := io.Copy(sc, r)
	f := sc.Facts()
	f.err = err
	return f
}

// LogScanner gathers LogFacts from a job log written to it in pieces, as
// it streams: the verdict then needs no copy of the log on disk.
type LogScanner struct {
	facts          LogFacts
	markers        *needle.Finder
	line           []byte
	overlong       bool // the current line passed maxLine: skipped
	inDump, inCopy bool
}

// NewLogScanner starts with nothing seen.
func NewLogScanner() *LogScanner {
	return &LogScanner{facts: LogFacts{read: true, rank: -1, srun: -1}, markers: needle.New(lineMarkers...)}
}

// Write takes the next bytes of the log; it never fails.
func (s *LogScanner) Write(p []byte) (int, error) {
	s.markers.Reset()
	pos := 0
	for pos < len(p) {
		i := bytes.IndexByte(p[pos:], '\n')
		chunk := p[pos:]
		if i >= 0 {
			chunk = p[pos : pos+i]
		}
		if !s.overlong {
			if len(s.line)+len(chunk) > maxLine {
				s.overlong, s.line = true, s.line[:0] // too long to matter
			} else {
				s.line = append(s.line, chunk...)
			}
		}
		if i < 0 {
			break
		}
		s.endLine()
		pos += i + 1
		// pos starts a line: the whole lines before the next marker
		// cannot matter and go at once (a job log is mostly such lines,
		// and one search of a piece costs less than a look at each line).
		next := s.markers.Next(p, pos)
		if last := bytes.LastIndexByte(p[pos:next], '\n'); last >= 0 {
			pos += last + 1
		}
	}
	return len(p), nil
}

// Facts are what the log said; a last line without its newline counts.
func (s *LogScanner) Facts() LogFacts {
	if len(s.line) > 0 {
		s.endLine()
	}
	return s.facts
}

func (s *LogScanner) endLine() {
	if !s.overlong && mayMatter(s.line) {
		s.take(strings.TrimRight(string(s.line), "\r"))
	}
	s.line, s.overlong = s.line[:0], false
}

// mayMatter is the cheap test, on a line or on many, that spares take (a string copy and two
// regular expressions) the lines that cannot change a fact: a job log is
// gigabytes of ranks' output with a handful of lines that count. Every
// marker take knows holds "===== " or "----- ", and the two result lines
// hold their own fixed words.
func mayMatter(line []byte) bool {
	return bytes.Contains(line, []byte("===== ")) || bytes.Contains(line, []byte("----- ")) ||
		bytes.Contains(line, []byte("Rank0 Pytest finished")) || bytes.Contains(line, []byte("srun: error: "))
}

// lineMarkers are in every line take uses (the line mayMatter passes). It
// looks for srun's report by its "Exited with exit code": a search for
// "srun: error: " is slow, because its first letter is everywhere in a
// log (bytes.Index then compares at nearly every position), and the line
// the verdict takes from srun holds both.
var lineMarkers = []string{"===== ", "----- ", "Rank0 Pytest finished", "Exited with exit code"}

func (s *LogScanner) take(text string) {
	switch trimmed := strings.TrimSpace(text); {
	case strings.HasPrefix(trimmed, dumpStart):
		s.inDump = true
		s.facts.dumps++
	case trimmed == dumpEnd:
		s.inDump = false
	case strings.HasPrefix(trimmed, copyStart) && !s.inDump:
		s.inCopy = true
	case strings.HasPrefix(trimmed, copyEndPrefix):
		s.inCopy = false
	case s.inCopy, s.inDump:
	default:
		if m := rankLine.FindStringSubmatch(text); m != nil {
			s.facts.rank, _ = strconv.Atoi(m[1])
		} else if m := srunTaskExit.FindStringSubmatch(text); m != nil {
			s.facts.srun, _ = strconv.Atoi(m[1])
		}
	}
}

// Decide applies PIPELINE.md's rules.
func Decide(ev Evidence) Verdict {
	v := Verdict{PytestCode: -1}
	bench := ev.Log
	if !bench.read {
		bench = LogFacts{rank: -1, srun: -1}
	}
	switch {
	case bench.rank >= 0:
		v.PytestCode, v.Source = bench.rank, "the benchmark step's Rank0 line"
		if bench.srun >= 0 && bench.srun == bench.rank {
			v.Source += " (srun's report agrees)"
		}
	case bench.srun >= 0:
		v.PytestCode, v.Source = bench.srun, "srun's report of the benchmark step"
	default:
		if code, ok := fromJUnit(ev.JUnit); ok {
			v.PytestCode, v.Source = code, "junit XML"
		}
	}
	if bench.dumps > 0 && v.Source != "" {
		v.Source += "; the draft's per-role log dump ignored"
	}
	if bench.err != nil {
		v.Source = strings.TrimPrefix(v.Source+"; ", "; ") + "job log unreadable after a point: " + bench.err.Error()
	}
	v.Code, v.Reason = jobCode(ev, v.PytestCode)
	switch {
	case ev.Interrupt != nil && ev.InterruptedLate:
		v.Code, v.Reason = exitcode.ForSignal(ev.Interrupt), "interrupted after the job ended ("+v.Reason+")"
	case ev.Interrupt != nil:
		v.Code, v.Reason = exitcode.ForSignal(ev.Interrupt), "interrupted; job cancelled ("+v.Reason+")"
	case ev.Lost != nil && ev.LostLoginNode:
		v.Code, v.Reason = exitcode.Unreachable, "following the job failed: "+strings.Join(strings.Fields(ev.Lost.Error()), " ")+" (the job was left as it was: a rerun with the same run id re-attaches)"
	case ev.Lost != nil:
		v.Code, v.Reason = exitcode.JobFailed, "following the job failed: "+strings.Join(strings.Fields(ev.Lost.Error()), " ")
	case v.Code == exitcode.OK && ev.PerfRegressed && ev.FailOnRegression:
		v.Code, v.Reason = exitcode.PerfRegression, "pytest passed but performance "+ev.PerfText
	}
	return v
}

// jobCode is the code and reason from the job's state and pytest's code
// (-1 when no source had it).
func jobCode(ev Evidence, pytest int) (int, string) {
	switch {
	case ev.State == "TIMEOUT":
		return exitcode.Timeout, "the job hit its time limit"
	case pytest >= 1 && pytest <= 5:
		return pytest, fmt.Sprintf("pytest exited %d (%s)", pytest, pytestMeaning(pytest))
	case pytest == 0 && ev.State == "COMPLETED":
		return exitcode.OK, "pytest passed"
	case pytest == 0:
		return exitcode.JobFailed, fmt.Sprintf("pytest passed but the job ended %s", stateText(ev))
	case pytest > 5:
		return exitcode.JobFailed, fmt.Sprintf("the benchmark step exited %d, which is not a pytest exit code (crash or signal); job %s", pytest, stateText(ev))
	}
	return exitcode.JobFailed, fmt.Sprintf("no pytest result found (no Rank0 line, srun report or junit XML); job %s", stateText(ev))
}

func stateText(ev Evidence) string {
	if ev.State == "CANCELLED" && ev.CancelledBy != "" {
		return "CANCELLED by " + ev.CancelledBy
	}
	if ev.State == "" {
		return "in an unknown state"
	}
	return ev.State
}

func pytestMeaning(code int) string {
	switch code {
	case 1:
		return "tests failed"
	case 2:
		return "interrupted"
	case 3:
		return "internal error"
	case 4:
		return "usage error"
	case 5:
		return "no tests collected"
	}
	return "unknown"
}

// junitSuite covers both <testsuites><testsuite .../></testsuites> and a
// bare <testsuite> root.
type junitSuite struct {
	XMLName  xml.Name
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

func (s junitSuite) totals() (tests, bad int) {
	if s.XMLName.Local == "testsuite" || len(s.Suites) == 0 {
		return s.Tests, s.Failures + s.Errors
	}
	for _, c := range s.Suites {
		t, b := c.totals()
		tests += t
		bad += b
	}
	return tests, bad
}

// fromJUnit derives pytest's code from junit reports: failures or errors
// → 1, no tests → 5, otherwise 0.
func fromJUnit(files [][]byte) (int, bool) {
	tests, bad, parsed := 0, 0, false
	for _, f := range files {
		var s junitSuite
		if err := xml.Unmarshal(f, &s); err != nil {
			continue
		}
		t, b := s.totals()
		tests += t
		bad += b
		parsed = true
	}
	switch {
	case !parsed:
		return 0, false
	case bad > 0:
		return 1, true
	case tests == 0:
		return 5, true
	}
	return 0, true
}
