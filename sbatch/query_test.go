package sbatch

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

const invalidJobID = "slurm_load_jobs error: Invalid job id specified\n"
const accountingDisabled = "Slurm accounting storage is disabled\n"

func TestQueryAsksControllerFirst(t *testing.T) {
	f := &fakeT{answer: func(cmd string) answer {
		if kind(cmd) == "scontrol" {
			return answer{stdout: readTestdata(t, "scontrol-failed-3.txt")}
		}
		t.Errorf("unexpected %q", cmd)
		return answer{code: 1}
	}}
	c := &Client{T: f}
	s, err := c.Query(context.Background(), "28")
	if err != nil || s.State != "FAILED" || s.ExitCode != 3 || s.Source != "scontrol" {
		t.Fatalf("%+v %v", s, err)
	}
	// Times are asked for in UTC and in the standard format, whatever the
	// login node's zone and the user's SLURM_TIME_FORMAT.
	if !strings.HasPrefix(f.calls[0], "TZ=UTC SLURM_TIME_FORMAT=standard scontrol -a show job -o 28") {
		t.Errorf("command %q", f.calls[0])
	}
}

func TestQueryFallsBackToSacctWhenPurged(t *testing.T) {
	f := &fakeT{answer: func(cmd string) answer {
		switch kind(cmd) {
		case "scontrol":
			return answer{stderr: invalidJobID, code: 1}
		case "sacct":
			return answer{stdout: "39|CANCELLED by 0|0:0|None|node[1-4]|2026-11-26T22:29:56|2026-11-26T22:29:59|2026-11-26T22:29:56\n"}
		}
		return answer{code: 1}
	}}
	c := &Client{T: f}
	s, err := c.Query(context.Background(), "39")
	if err != nil || s.State != "CANCELLED" || s.CancelledBy != "0" || s.Source != "sacct" || !s.Terminal() {
		t.Fatalf("%+v %v", s, err)
	}
	if !strings.Contains(f.calls[1], "sacct -X -P -n -j 39 --format=JobID,State,ExitCode,Reason,NodeList,Start,End,Submit") {
		t.Errorf("sacct command %q", f.calls[1])
	}
}

func TestQueryEmptyIsUnknown(t *testing.T) {
	f := &fakeT{answer: func(cmd string) answer {
		if kind(cmd) == "scontrol" {
			return answer{stderr: invalidJobID, code: 1}
		}
		return answer{} // sacct: nothing yet
	}}
	s, err := (&Client{T: f}).Query(context.Background(), "41")
	if err != nil || s.Known || s.Terminal() {
		t.Fatalf("%+v %v: an empty answer must be unknown, never finished", s, err)
	}
}

func TestQueryPurgedWithoutAccounting(t *testing.T) {
	f := &fakeT{answer: func(cmd string) answer {
		if kind(cmd) == "scontrol" {
			return answer{stderr: invalidJobID, code: 1}
		}
		return answer{stderr: accountingDisabled, code: 1}
	}}
	s, err := (&Client{T: f}).Query(context.Background(), "42")
	if !errors.Is(err, ErrAccountingDisabled) || s.Known {
		t.Fatalf("%+v %v", s, err)
	}
	for _, want := range []string{"job 42", "MinJobAge", "accounting storage is disabled"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestQueryControllerDown(t *testing.T) {
	f := &fakeT{answer: func(cmd string) answer {
		return answer{stderr: "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n", code: 1}
	}}
	_, err := (&Client{T: f}).Query(context.Background(), "43")
	if err == nil || !strings.Contains(err.Error(), "Unable to contact slurm controller") || f.count("sacct") != 0 {
		t.Fatalf("%v (a controller that is down is not a purged job)", err)
	}
	if code, ok := exitCode(err); !ok || code != 1 {
		t.Errorf("the exit status is lost from %v", err)
	}
}

func TestCancelConfirms(t *testing.T) {
	polls := 0
	f := &fakeT{answer: func(cmd string) answer {
		switch kind(cmd) {
		case "scancel":
			return answer{}
		case "scontrol":
			polls++
			if polls < 3 {
				return answer{stdout: readTestdata(t, "scontrol-running.txt")}
			}
			return answer{stdout: strings.Replace(readTestdata(t, "scontrol-cancelled-running.txt"), "JobId=39", "JobId=35", 1)}
		}
		return answer{code: 1}
	}}
	c := &Client{T: f, Policy: fastPolicy}
	s, err := c.Cancel(testContext(t, 10e9), "35")
	if err != nil || s.State != "CANCELLED" || s.Signal != 15 {
		t.Fatalf("%+v %v", s, err)
	}
	if f.calls[0] != "scancel 35" || polls != 3 {
		t.Errorf("calls %q", f.calls)
	}
}

func TestCancelUnknownJob(t *testing.T) {
	f := &fakeT{answer: func(cmd string) answer {
		switch kind(cmd) {
		case "scancel":
			return answer{} // scancel says nothing about an unknown id
		case "scontrol":
			return answer{stderr: invalidJobID, code: 1}
		}
		return answer{}
	}}
	_, err := (&Client{T: f, Policy: fastPolicy}).Cancel(testContext(t, 10e9), "999")
	if err == nil || !strings.Contains(err.Error(), "does not know") {
		t.Fatalf("got %v", err)
	}
}

func TestCancelIgnoresScancelErrors(t *testing.T) {
	f := &fakeT{answer: func(cmd string) answer {
		switch kind(cmd) {
		case "scancel":
			return answer{stderr: "scancel: error: Kill job error on job id 37: Job/step already completing or completed\n", code: 1}
		case "scontrol":
			return answer{stdout: readTestdata(t, "scontrol-completed.txt")}
		}
		return answer{}
	}}
	s, err := (&Client{T: f, Policy: fastPolicy}).Cancel(testContext(t, 10e9), "37")
	if err != nil || s.State != "COMPLETED" {
		t.Fatalf("%+v %v", s, err)
	}
}

func TestErrorLinePicksSlurmsError(t *testing.T) {
	stderr := "sbatch: warning: something harmless\nsbatch: error: Batch job submission failed: Invalid partition name specified\n"
	if got := errorLine(stderr); got != "sbatch: error: Batch job submission failed: Invalid partition name specified" {
		t.Errorf("got %q", got)
	}
	if got := errorLine("bash: line 1: cd: /nope: No such file or directory\n"); !strings.Contains(got, "/nope") {
		t.Errorf("got %q", got)
	}
}

// TestSettle: a COMPLETING job has ended when accounting recorded the end
// of that run; not when accounting has another run's end, or a requeue.
func TestSettle(t *testing.T) {
	completing := job{state: "COMPLETING", nodes: "node[2-4]", start: t0, exit: "0:15"}
	for _, c := range []struct {
		name, sacct string
		want        string
		completing  bool
	}{
		{"cancelled", job{state: "CANCELLED by 0", nodes: "node[2-4]", start: t0, end: t0.Add(time.Second)}.sacct("9"), "CANCELLED", true},
		{"another run's end", job{state: "FAILED", nodes: "node1", start: t0.Add(-time.Hour), end: t0.Add(-time.Minute)}.sacct("9"), "COMPLETING", false},
		{"a requeue", job{state: "REQUEUED", nodes: "node[2-4]", start: t0, end: t0.Add(time.Second)}.sacct("9"), "COMPLETING", false},
		{"not recorded yet", "", "COMPLETING", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeT{answer: func(cmd string) answer {
				switch kind(cmd) {
				case "scontrol":
					return answer{stdout: completing.scontrol("9")}
				case "sacct":
					return answer{stdout: c.sacct}
				}
				return answer{code: 127}
			}}
			s, err := (&Client{T: f, Policy: fastPolicy}).Settle(testContext(t, 10e9), "9")
			if err != nil || s.State != c.want || s.Completing != c.completing {
				t.Fatalf("%+v %v, want %s (completing %v)", s, err, c.want, c.completing)
			}
			if c.completing && (s.Signal != 15 || s.NodeList != "node[2-4]") {
				t.Errorf("the controller's signal and nodes are lost: %+v", s)
			}
		})
	}
}

// TestSettleForgottenJob: a job the controller no longer knows has ended,
// even when accounting's last record of it is not an end.
func TestSettleForgottenJob(t *testing.T) {
	for _, c := range []struct {
		name  string
		rec   job
		live  bool
		unrec bool
	}{
		{"accounting has the end", job{state: "CANCELLED by 0", nodes: "node1", start: t0, end: t0.Add(time.Second)}, false, false},
		{"accounting still says REQUEUED", job{state: "REQUEUED", nodes: "node1", start: t0}, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeT{answer: func(cmd string) answer {
				switch kind(cmd) {
				case "scontrol":
					return answer{stderr: invalidJobID, code: 1}
				case "sacct":
					return answer{stdout: c.rec.sacct("9")}
				}
				return answer{code: 127}
			}}
			s, err := (&Client{T: f, Policy: fastPolicy}).Settle(testContext(t, 10e9), "9")
			if err != nil || s.Live() != c.live || s.EndUnrecorded != c.unrec || s.Source != "sacct" {
				t.Fatalf("%+v %v, want live %v, end unrecorded %v", s, err, c.live, c.unrec)
			}
		})
	}
}
