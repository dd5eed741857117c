// Package exitcode is the table of documented exit codes (PIPELINE.md,
// "Exit codes"). It decides nothing: the verdict maps a finished job to a
// code, and the CLI's one function maps every other error to one.
package exitcode

import (
	"os"
	"syscall"
)

// The documented exit codes. 1–5 are pytest's own and are passed through.
const (
	OK              = 0
	Prerequisite    = 10  // the checklist failed
	BadInput        = 11  // config, test list, prefix, draft invalid; contract check failed
	Unreachable     = 12  // connection, authentication or host key
	SubmitRefused   = 13  // sbatch refused the job
	JobFailed       = 14  // failed outside pytest
	PerfRegression  = 15  // with --fail-on-regression: pytest passed, a gated metric regressed
	Timeout         = 124 // Slurm TIMEOUT
	Interrupted     = 130 // SIGINT
	Terminated      = 143 // SIGTERM
	InternalFailure = 70  // a bug in disagg-runner (EX_SOFTWARE); prints everything
)

// ForSignal is the exit code for a run interrupted by sig: 128 + the signal
// number, as shells report it (130 for SIGINT, 143 for SIGTERM).
func ForSignal(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return Interrupted
}

// seriousness orders the codes of a run of several tests, most serious
// first: what stopped the run as a whole, then what kept a job from
// running or finishing, then how a job failed, then pytest's own codes
// (the highest first). Codes not listed rank below them, above 0.
var seriousness = []int{Interrupted, Terminated, InternalFailure, Unreachable, SubmitRefused, Prerequisite, BadInput,
	Timeout, JobFailed, PerfRegression, 5, 4, 3, 2, 1}

// Worst is a run of several tests' exit code: 0 when every test's code
// is 0, else the most serious of them.
func Worst(codes []int) int {
	worst, rank := OK, len(seriousness)+1
	for _, c := range codes {
		if c == OK {
			continue
		}
		r := len(seriousness) // an undocumented code: below the documented ones
		for i, s := range seriousness {
			if s == c {
				r = i
				break
			}
		}
		if r < rank || (r == rank && c > worst) {
			worst, rank = c, r
		}
	}
	return worst
}
