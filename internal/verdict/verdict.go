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
	"encoding/xml"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/disagg-runner/disagg-runner/internal/exitcode"
)

// Evidence is what the runner collected about a finished job.
type Evidence struct {
	State       string // Slurm base state: COMPLETED, FAILED, CANCELLED, TIMEOUT, ...
	CancelledBy string // "CANCELLED by <uid>" as sacct reports it, when known
	JobLog      []byte // job-output.log (the benchmark step writes here)
	JUnit       [][]byte
	// Interrupt is the signal that stopped the runner, which then
	// cancelled the job; nil when none did.
	Interrupt os.Signal
	// Lost is why following the job failed before its end was learned.
	Lost error
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
	rankLine = regexp.MustCompile(`(?m)\bRank0 Pytest finished execution with exit code (\d+)\s*$`)
	// srun's report of a failing task of the foreground (benchmark) step.
	srunTaskExit = regexp.MustCompile(`(?m)^srun: error: \S+: task 0: Exited with exit code (\d+)\s*$`)
)

// Decide applies PIPELINE.md's rules.
func Decide(ev Evidence) Verdict {
	v := Verdict{PytestCode: -1}
	if m := rankLine.FindAllSubmatch(ev.JobLog, -1); len(m) > 0 {
		v.PytestCode, _ = strconv.Atoi(string(m[len(m)-1][1]))
		v.Source = "run script's Rank0 line"
	} else if m := srunTaskExit.FindAllSubmatch(ev.JobLog, -1); len(m) > 0 {
		v.PytestCode, _ = strconv.Atoi(string(m[len(m)-1][1]))
		v.Source = "srun's report of the benchmark step"
	} else if code, ok := fromJUnit(ev.JUnit); ok {
		v.PytestCode = code
		v.Source = "junit XML"
	}

	v.Code, v.Reason = jobCode(ev, v.PytestCode)
	switch {
	case ev.Interrupt != nil:
		v.Code, v.Reason = exitcode.ForSignal(ev.Interrupt), "interrupted; job cancelled ("+v.Reason+")"
	case ev.Lost != nil:
		v.Code, v.Reason = exitcode.JobFailed, "following the job failed: "+strings.Join(strings.Fields(ev.Lost.Error()), " ")
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
