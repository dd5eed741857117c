package sbatch

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/lazyre"
)

// JobState is one observation of a job, from whichever source answered.
type JobState struct {
	ID JobID
	// State is Slurm's base state (PENDING RUNNING COMPLETING COMPLETED
	// FAILED CANCELLED TIMEOUT NODE_FAIL OUT_OF_MEMORY PREEMPTED BOOT_FAIL
	// DEADLINE REQUEUED ...); sacct's "CANCELLED by 0" becomes CANCELLED
	// with CancelledBy "0".
	State       string
	CancelledBy string // uid that cancelled the job, when sacct says
	Reason      string // why it is pending or why it ended ("Resources", "NonZeroExitCode"); "" for None
	NodeList    string // "node[1-2]"; "" while none are allocated
	ExitCode    int    // the batch script's exit status, from ExitCode=N:S
	Signal      int    // the signal that ended it, from ExitCode=N:S
	Submit      time.Time
	Start       time.Time // start of the current run (zero while pending)
	End         time.Time // zero until it ended
	// ExpectedStart is the scheduler's estimate for a PENDING job, when
	// the controller has one (scontrol's StartTime).
	ExpectedStart time.Time
	Restarts      int // how often it was requeued (scontrol only)
	// Requeueable: Slurm may requeue the job (scontrol's Requeue=1).
	Requeueable bool
	Known       bool // false: no source knew the job (yet)
	// Source names who answered: "scontrol" or "sacct".
	Source string
	// Completing: the job has ended, but Slurm is still stopping its
	// processes on NodeList (the controller says COMPLETING). Cancel,
	// Settle and Watch set it, on a state that is then either accounting's
	// recorded end or (Cancel and Watch, without accounting) the
	// controller's COMPLETING.
	Completing bool
	// EndUnrecorded: the controller has forgotten the job, which it does
	// only after its end, and nothing recorded that end. From Settle,
	// State is the last accounting got (such as REQUEUED); from Watch on a
	// cluster without accounting, State is "" (unknown).
	EndUnrecorded bool
	// StdOut is the batch script's output file as the controller reports
	// it (scontrol only); "" when not known.
	StdOut string
}

// Terminal reports whether the job has ended for good. COMPLETING is not
// terminal (the final state and exit code are not settled), nor is
// REQUEUED (it comes back as PENDING), nor SPECIAL_EXIT or REQUEUE_HOLD,
// which wait for someone to release the job.
func (s JobState) Terminal() bool {
	return s.Known && terminalStates[s.State]
}

// forgottenUnended reports an answer of accounting about a job the
// controller has forgotten (so it has ended) that is not an end: the end
// was never recorded, or not yet.
func (s JobState) forgottenUnended() bool {
	return s.Known && s.Source == "sacct" && !s.Terminal()
}

// Live reports whether the job is known and has not ended: it may still
// run, or run again.
func (s JobState) Live() bool {
	return s.Known && !s.Terminal() && !s.EndUnrecorded
}

// Held reports whether the job waits for someone to release it
// (`scontrol release`) rather than for resources: held by an operator or
// its owner, or held by Slurm itself after a failed launch of a requeued
// job. Nothing the runner does by waiting will start it.
func (s JobState) Held() bool {
	if s.State == "REQUEUE_HOLD" || s.State == "SPECIAL_EXIT" {
		return true
	}
	return s.State == "PENDING" && heldReasons[s.Reason]
}

var heldReasons = map[string]bool{
	"JobHeldAdmin":                true,
	"JobHeldUser":                 true,
	"launch_failed_requeued_held": true,
	"job_requeued_in_held_state":  true,
}

var terminalStates = map[string]bool{
	"COMPLETED":     true,
	"FAILED":        true,
	"CANCELLED":     true,
	"TIMEOUT":       true,
	"NODE_FAIL":     true,
	"OUT_OF_MEMORY": true,
	"PREEMPTED":     true,
	"BOOT_FAIL":     true,
	"DEADLINE":      true,
	"REVOKED":       true,
}

// timeLayout is Slurm's "standard" time format; Slurm's commands run with
// TZ=UTC (see slurmEnv), so parsed times are UTC.
const timeLayout = "2006-01-02T15:04:05"

// parseTime reads a Slurm time; "Unknown", "None", "N/A" and empty mean
// "no time" rather than an error, as Slurm prints them for times that are
// not set yet.
func parseTime(v string) time.Time {
	t, err := time.ParseInLocation(timeLayout, v, time.UTC)
	if err != nil {
		return time.Time{}
	}
	return t
}

// parseExit splits Slurm's "N:S" exit code.
func parseExit(v string) (code, signal int) {
	n, s, _ := strings.Cut(v, ":")
	code, _ = strconv.Atoi(n)
	signal, _ = strconv.Atoi(s)
	return code, signal
}

// nodeList normalises the ways Slurm says "no nodes".
func nodeList(v string) string {
	switch v {
	case "", "(null)", "None assigned", "None":
		return ""
	}
	return v
}

// reason normalises "None" (nothing to explain) to "".
func reason(v string) string {
	if v == "None" || v == "(null)" {
		return ""
	}
	return v
}

// keyToken recognises the start of a field in `scontrol show job -o`
// output. A token that does not look like "Key=" continues the previous
// value: a few values (Reason, Comment, WorkDir, Command) may hold spaces.
var keyToken = lazyre.New(`^[A-Za-z][A-Za-z0-9_:/]*=`)

// parseKeyValues splits one `scontrol show ... -o` line into its fields.
// The first occurrence of a key wins: the fields the runner reads come
// before the free-text ones, so text in a Comment or a path that happens
// to contain "JobState=..." cannot shadow the real one.
func parseKeyValues(line string) map[string]string {
	fields := map[string]string{}
	var key string
	var val []string
	flush := func() {
		if key != "" {
			if _, seen := fields[key]; !seen {
				fields[key] = strings.Join(val, " ")
			}
		}
	}
	for _, tok := range strings.Fields(line) {
		if loc := keyToken.FindStringIndex(tok); loc != nil {
			flush()
			key = tok[:loc[1]-1]
			val = []string{tok[loc[1]:]}
			continue
		}
		if key != "" {
			val = append(val, tok)
		}
	}
	flush()
	return fields
}

// parseScontrol reads `scontrol show job -o <id>` output. A heterogeneous
// or array job prints one line per component; the line for id itself is
// used, else the first one.
func parseScontrol(id JobID, out string) (JobState, error) {
	var chosen map[string]string
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := parseKeyValues(line)
		if _, ok := f["JobState"]; !ok {
			continue
		}
		if chosen == nil || f["JobId"] == string(id) {
			chosen = f
		}
		if f["JobId"] == string(id) {
			break
		}
	}
	if chosen == nil {
		return JobState{ID: id}, fmt.Errorf("scontrol show job %s: no JobState in its answer %q", id, firstChars(out, 200))
	}
	s := JobState{ID: id, Known: true, Source: "scontrol"}
	s.State = chosen["JobState"]
	s.Reason = reason(chosen["Reason"])
	s.NodeList = nodeList(chosen["NodeList"])
	s.ExitCode, s.Signal = parseExit(chosen["ExitCode"])
	s.Submit = parseTime(chosen["SubmitTime"])
	s.Restarts, _ = strconv.Atoi(chosen["Restarts"])
	s.Requeueable = chosen["Requeue"] == "1"
	s.StdOut = chosen["StdOut"]
	start := parseTime(chosen["StartTime"])
	if s.State == "PENDING" {
		// A pending job's StartTime is the scheduler's estimate, and its
		// EndTime is start+limit: neither has happened.
		s.ExpectedStart = start
	} else {
		s.Start = start
		if s.Terminal() {
			s.End = parseTime(chosen["EndTime"])
		}
	}
	return s, nil
}

// sacctFields is the --format Query asks sacct for, in this order.
const sacctFields = "JobID,State,ExitCode,Reason,NodeList,Start,End,Submit"

// parseSacct reads `sacct -X -P -n --format=<sacctFields>` output. Empty
// output means sacct does not know the job (yet: it lags sbatch by about a
// second), which is Known=false, never "finished".
func parseSacct(id JobID, out string) (JobState, error) {
	var chosen []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) < 8 {
			return JobState{ID: id}, fmt.Errorf("sacct -j %s: unexpected line %q", id, firstChars(line, 200))
		}
		if chosen == nil || f[0] == string(id) {
			chosen = f
		}
	}
	if chosen == nil {
		return JobState{ID: id, Source: "sacct"}, nil
	}
	s := JobState{ID: id, Known: true, Source: "sacct"}
	state, by, _ := strings.Cut(chosen[1], " by ")
	s.State, s.CancelledBy = strings.TrimSpace(state), strings.TrimSpace(by)
	s.ExitCode, s.Signal = parseExit(chosen[2])
	s.Reason = reason(chosen[3])
	s.NodeList = nodeList(chosen[4])
	s.Submit = parseTime(chosen[7])
	if s.State != "PENDING" {
		s.Start = parseTime(chosen[5])
	} else {
		// Accounting lags: it says PENDING, with the first node and the
		// start time, while the job is already running. Neither belongs
		// to a pending job.
		s.NodeList = ""
	}
	if s.Terminal() {
		s.End = parseTime(chosen[6])
	}
	return s, nil
}

func firstChars(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
