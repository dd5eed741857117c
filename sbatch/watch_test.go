package sbatch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/transport"
)

// job builds `scontrol show job -o` lines in Slurm's field order.
type job struct {
	state, reason, nodes, exit string
	restarts                   int
	start, end                 time.Time
}

func (j job) scontrol(id string) string {
	t := func(x time.Time) string {
		if x.IsZero() {
			return "Unknown"
		}
		return x.UTC().Format(timeLayout)
	}
	reason, exit := j.reason, j.exit
	if reason == "" {
		reason = "None"
	}
	if exit == "" {
		exit = "0:0"
	}
	return fmt.Sprintf("JobId=%s JobName=launch.sh UserId=root(0) JobState=%s Reason=%s Dependency=(null) Requeue=1 Restarts=%d "+
		"BatchFlag=1 ExitCode=%s SubmitTime=2026-11-26T10:00:00 StartTime=%s EndTime=%s Partition=batch NodeList=%s "+
		"WorkDir=/ws StdOut=/ws/out.log\n", id, j.state, reason, j.restarts, exit, t(j.start), t(j.end), j.nodes)
}

// sacct renders the same state the way sacct prints it.
func (j job) sacct(id string) string {
	t := func(x time.Time) string {
		if x.IsZero() {
			return "Unknown"
		}
		return x.UTC().Format(timeLayout)
	}
	exit := j.exit
	if exit == "" {
		exit = "0:0"
	}
	nodes := j.nodes
	if nodes == "" {
		nodes = "None assigned"
	}
	return fmt.Sprintf("%s|%s|%s|None|%s|%s|%s|2026-11-26T10:00:00\n", id, j.state, exit, nodes, t(j.start), t(j.end))
}

// step is the fake cluster from a moment on. Empty fields keep the
// previous step's answer.
type step struct {
	at       time.Duration
	scontrol *answer
	sacct    *answer
	sentinel *string
	out      *string // `stat -c '%s %Y'` of the job's output file
}

// timeline is a fake login node whose Slurm answers change over time:
// the time of the fake clock Watch runs on, so that each poll gets the
// answer its moment calls for, however slow the machine is.
type timeline struct {
	t     *testing.T
	clock *fakeClock
	start time.Time
	steps []step

	mu        sync.Mutex
	scontrols []time.Duration // when the controller was asked
	sentinels int
	hangs     int // the first this many sentinel reads never answer
	stats     int // sentinel reads that also looked at the output file
	saccts    int
}

// client returns a Client that talks to the timeline's login node and
// watches on its clock.
func (tl *timeline) client(p Policy, logf func(string, ...any)) *Client {
	tl.clock = newFakeClock()
	tl.start = tl.clock.Now()
	return &Client{T: &fakeT{answer: tl.answer}, Policy: p, Logf: logf, clock: tl.clock}
}

// elapsed is the clock's time since the watch started.
func (tl *timeline) elapsed() time.Duration { return tl.clock.Now().Sub(tl.start) }

func (tl *timeline) answer(cmd string) answer {
	el := tl.elapsed()
	var sc, sa answer
	var sen, out string
	for _, s := range tl.steps {
		if s.at > el {
			break
		}
		if s.scontrol != nil {
			sc = *s.scontrol
		}
		if s.sacct != nil {
			sa = *s.sacct
		}
		if s.sentinel != nil {
			sen = *s.sentinel
		}
		if s.out != nil {
			out = *s.out
		}
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	switch kind(cmd) {
	case "scontrol":
		tl.scontrols = append(tl.scontrols, el)
		return sc
	case "sacct":
		tl.saccts++
		return sa
	case "sentinel":
		tl.sentinels++
		if tl.sentinels <= tl.hangs {
			return answer{hang: true}
		}
		if strings.Contains(cmd, "stat -c '%s %Y' -- /ws/out.log") {
			tl.stats++
			return answer{stdout: "O:" + out + "\n" + sen}
		}
		return answer{stdout: sen}
	}
	tl.t.Errorf("unexpected command %q", cmd)
	return answer{code: 127}
}

func (tl *timeline) controllerCalls() int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return len(tl.scontrols)
}

func ctl(j job) *answer  { a := answer{stdout: j.scontrol("9")}; return &a }
func acct(j job) *answer { a := answer{stdout: j.sacct("9")}; return &a }
func str(s string) *string {
	return &s
}

var (
	t0      = time.Date(2026, 11, 26, 10, 0, 5, 0, time.UTC)
	pending = job{state: "PENDING", reason: "Resources"}
	running = job{state: "RUNNING", nodes: "node[1-2]", start: t0}
)

func sentinelAt(rc int, at time.Time) *string { return str(fmt.Sprintf("%d %d\n", rc, at.Unix())) }

// watchChanges runs Watch, for at most d of the fake clock's time, and
// collects what onChange saw.
func watchChanges(t *testing.T, c *Client, d time.Duration) (JobState, []JobState, error) {
	var changes []JobState
	final, err := c.Watch(c.clock.(*fakeClock).context(t, d), "9", "/ws/job-finished", func(s JobState) { changes = append(changes, s) })
	return final, changes, err
}

func states(changes []JobState) string {
	var parts []string
	for _, s := range changes {
		p := s.State
		if s.Reason != "" {
			p += "(" + s.Reason + ")"
		}
		if s.Restarts > 0 {
			p += fmt.Sprintf("#%d", s.Restarts)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}

func TestWatchEndsOnSentinel(t *testing.T) {
	done := job{state: "COMPLETED", nodes: "node[1-2]", start: t0, end: t0.Add(time.Minute)}
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: ctl(pending), sacct: &answer{}},
		{at: 50 * time.Millisecond, scontrol: ctl(running), sacct: acct(running)},
		// The script's trap has run; the controller still says RUNNING
		// for a moment, as it does for about a second on the real one.
		{at: 200 * time.Millisecond, sentinel: sentinelAt(0, t0.Add(time.Minute))},
		{at: 230 * time.Millisecond, scontrol: ctl(done)},
	}}
	c := tl.client(fastPolicy, t.Logf)
	final, changes, err := watchChanges(t, c, 5*time.Second)
	if err != nil || final.State != "COMPLETED" || final.ExitCode != 0 {
		t.Fatalf("%+v %v", final, err)
	}
	if got := states(changes); got != "PENDING(Resources) RUNNING COMPLETED" {
		t.Errorf("changes %q", got)
	}
	if changes[1].NodeList != "node[1-2]" {
		t.Errorf("RUNNING without its nodes: %+v", changes[1])
	}
	// Ended 200 ms in: the sentinel is read every FastPoll and the
	// controller confirms within a few more.
	if el := tl.elapsed(); el > 400*time.Millisecond {
		t.Errorf("noticed the end after %s", el)
	}
}

// TestWatchCompletingEndFromAccounting: the sentinel announces the end,
// the controller says COMPLETING (Slurm still stopping the job's
// processes, for as long as KillWait) while accounting already recorded
// CANCELLED. The watch takes accounting's state with the controller's
// signal, and does not ask the controller again.
func TestWatchCompletingEndFromAccounting(t *testing.T) {
	completing := job{state: "COMPLETING", nodes: "node[1-2]", start: t0, end: t0.Add(time.Minute), exit: "0:15"}
	cancelled := job{state: "CANCELLED by 0", nodes: "node[1-2]", start: t0, end: t0.Add(time.Minute)}
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: ctl(running), sacct: acct(running)},
		{at: 200 * time.Millisecond, sentinel: sentinelAt(143, t0.Add(time.Minute)), scontrol: ctl(completing), sacct: acct(cancelled)},
	}}
	c := tl.client(fastPolicy, t.Logf)
	final, changes, err := watchChanges(t, c, 5*time.Second)
	if err != nil || final.State != "CANCELLED" || final.CancelledBy != "0" || final.Signal != 15 || final.NodeList != "node[1-2]" || !final.End.Equal(t0.Add(time.Minute)) {
		t.Fatalf("%+v %v", final, err)
	}
	if got := states(changes); got != "RUNNING COMPLETING CANCELLED" {
		t.Errorf("changes %q", got)
	}
	if n := tl.controllerCalls(); n != 2 {
		t.Errorf("controller asked %d times, want 2 (first look, the end: COMPLETING)", n)
	}
}

// TestWatchCompletingOtherRunInAccounting: accounting's final record is of
// an earlier run (its start differs): the controller is asked again.
func TestWatchCompletingOtherRunInAccounting(t *testing.T) {
	completing := job{state: "COMPLETING", nodes: "node1", start: t0, end: t0.Add(time.Minute)}
	earlier := job{state: "FAILED", nodes: "node1", start: t0.Add(-time.Hour), end: t0.Add(-time.Minute), exit: "1:0"}
	done := job{state: "COMPLETED", nodes: "node1", start: t0, end: t0.Add(time.Minute)}
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: ctl(running), sacct: acct(running)},
		{at: 200 * time.Millisecond, sentinel: sentinelAt(0, t0.Add(time.Minute)), scontrol: ctl(completing), sacct: acct(earlier)},
		{at: 400 * time.Millisecond, scontrol: ctl(done), sacct: acct(done)},
	}}
	c := tl.client(fastPolicy, t.Logf)
	final, changes, err := watchChanges(t, c, 5*time.Second)
	if err != nil || final.State != "COMPLETED" || !final.End.Equal(t0.Add(time.Minute)) {
		t.Fatalf("%+v %v", final, err)
	}
	if got := states(changes); got != "RUNNING COMPLETING COMPLETED" {
		t.Errorf("changes %q", got)
	}
}

func TestWatchEndsOnSacctWithoutSentinel(t *testing.T) {
	// SIGKILL or a node failure: no EXIT trap ran.
	failed := job{state: "NODE_FAIL", nodes: "node[1-2]", start: t0, end: t0.Add(time.Minute)}
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: ctl(running), sacct: acct(running)},
		{at: 100 * time.Millisecond, scontrol: ctl(failed), sacct: acct(failed)},
	}}
	c := tl.client(fastPolicy, t.Logf)
	final, _, err := watchChanges(t, c, 5*time.Second)
	if err != nil || final.State != "NODE_FAIL" || final.Source != "scontrol" {
		t.Fatalf("%+v %v", final, err)
	}
	// sacct is asked every SlowPoll (30 ms) and the controller once to
	// confirm, long before its own 300 ms (stretched: 1.2 s) poll.
	if el := tl.elapsed(); el > 250*time.Millisecond {
		t.Errorf("noticed the end after %s", el)
	}
	// A requeueable job that failed is looked at once more: was it a
	// requeue (TestWatchFailedThenRequeued)?
	if n := tl.controllerCalls(); n != 3 {
		t.Errorf("controller asked %d times, want 3 (first look, confirmation, the look for a requeue)", n)
	}
}

// scontrol requeue on a loaded cluster: the batch script's exit (its trap
// wrote the sentinel) reaches the controller before the requeue, which
// says FAILED for a moment, then PENDING with Restarts=1. The watch goes
// on to the second run's end.
func TestWatchFailedThenRequeued(t *testing.T) {
	failed := job{state: "FAILED", reason: "NonZeroExitCode", exit: "1:0", nodes: "node1", start: t0, end: t0.Add(10 * time.Second)}
	requeued := job{state: "PENDING", reason: "BeginTime", restarts: 1}
	second := job{state: "RUNNING", nodes: "node1", start: t0.Add(time.Minute), restarts: 1}
	done := job{state: "COMPLETED", nodes: "node1", start: t0.Add(time.Minute), end: t0.Add(2 * time.Minute), restarts: 1}
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: ctl(running), sacct: acct(running)},
		{at: 100 * time.Millisecond, sentinel: sentinelAt(1, t0.Add(10*time.Second)), scontrol: ctl(failed)},
		{at: 115 * time.Millisecond, scontrol: ctl(requeued), sacct: acct(requeued)},
		{at: 400 * time.Millisecond, scontrol: ctl(second), sacct: acct(second)},
		{at: 600 * time.Millisecond, sentinel: sentinelAt(0, t0.Add(2*time.Minute)), scontrol: ctl(done), sacct: acct(done)},
	}}
	c := tl.client(fastPolicy, t.Logf)
	final, changes, err := watchChanges(t, c, 10*time.Second)
	if err != nil || final.State != "COMPLETED" || final.Restarts != 1 {
		t.Fatalf("%+v %v (changes %s)", final, err, states(changes))
	}
}

func TestWatchWithoutAccounting(t *testing.T) {
	cancelled := job{state: "CANCELLED", reason: "None", start: t0, end: t0.Add(time.Minute), nodes: "node[1-2]", exit: "0:15"}
	disabled := &answer{stderr: accountingDisabled, code: 1}
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: ctl(running), sacct: disabled},
		// Cancelled: no sentinel, no accounting; the controller's own
		// poll must see it.
		{at: 100 * time.Millisecond, scontrol: ctl(cancelled)},
	}}
	c := tl.client(fastPolicy, t.Logf)
	final, _, err := watchChanges(t, c, 5*time.Second)
	if err != nil || final.State != "CANCELLED" || final.Signal != 15 {
		t.Fatalf("%+v %v", final, err)
	}
	if tl.saccts != 1 {
		t.Errorf("sacct asked %d times on a cluster without accounting, want once", tl.saccts)
	}
	// Without sacct the controller is asked every noAccountingStretch
	// ControllerEvery while the job runs (the sentinel covers the usual
	// ends): the end at 100 ms is seen at the 900 ms poll.
	want := noAccountingStretch * fastPolicy.ControllerEvery
	if el := tl.elapsed(); el < want-50*time.Millisecond || el > want+300*time.Millisecond {
		t.Errorf("ended after %s, want about %s", el, want)
	}
}

func TestWatchRequeueIgnoresOldSentinel(t *testing.T) {
	t1 := t0.Add(10 * time.Minute) // the second run's start
	requeued := job{state: "PENDING", reason: "BeginTime", restarts: 1, start: t1}
	running2 := job{state: "RUNNING", nodes: "node[3-4]", restarts: 1, start: t1}
	done2 := job{state: "COMPLETED", nodes: "node[3-4]", restarts: 1, start: t1, end: t1.Add(time.Minute)}
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: ctl(running), sacct: acct(running)},
		// The first run is requeued: its EXIT trap writes the sentinel,
		// accounting says REQUEUED, the controller PENDING with Restarts=1.
		{at: 100 * time.Millisecond, sentinel: sentinelAt(143, t0.Add(2*time.Minute)),
			scontrol: ctl(requeued), sacct: acct(job{state: "REQUEUED", nodes: "node[1-2]", start: t0, end: t0.Add(2 * time.Minute)})},
		{at: 300 * time.Millisecond, scontrol: ctl(running2), sacct: acct(running2)},
		{at: 700 * time.Millisecond, sentinel: sentinelAt(0, t1.Add(time.Minute)), scontrol: ctl(done2), sacct: acct(done2)},
	}}
	c := tl.client(fastPolicy, t.Logf)
	final, changes, err := watchChanges(t, c, 5*time.Second)
	if err != nil || final.State != "COMPLETED" || final.Restarts != 1 || final.NodeList != "node[3-4]" {
		t.Fatalf("%+v %v", final, err)
	}
	if el := tl.elapsed(); el < 700*time.Millisecond {
		t.Errorf("ended after %s: the first run's sentinel ended the watch", el)
	}
	if got := states(changes); got != "RUNNING PENDING(BeginTime)#1 RUNNING#1 COMPLETED#1" {
		t.Errorf("changes %q", got)
	}
}

// Right after a requeue slurmctld can answer with the requeued run, ended
// (its batch script's exit arriving late); that is not the job's end.
func TestWatchRequeuedRunEndingLateIsNotTheEnd(t *testing.T) {
	t1 := t0.Add(10 * time.Minute)
	requeued := job{state: "PENDING", reason: "BeginTime", restarts: 1, start: t1}
	oldRunFailed := job{state: "FAILED", exit: "1:0", nodes: "node[1-2]", restarts: 1, start: t0, end: t0.Add(2 * time.Minute)}
	running2 := job{state: "RUNNING", nodes: "node[3-4]", restarts: 1, start: t1}
	done2 := job{state: "COMPLETED", nodes: "node[3-4]", restarts: 1, start: t1, end: t1.Add(time.Minute)}
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: ctl(running), sacct: acct(running)},
		{at: 100 * time.Millisecond, sentinel: sentinelAt(1, t0.Add(2*time.Minute)), scontrol: ctl(requeued),
			sacct: acct(job{state: "REQUEUED", nodes: "node[1-2]", start: t0, end: t0.Add(2 * time.Minute)})},
		// Accounting and the controller both show the old run failed for
		// a moment.
		{at: 150 * time.Millisecond, scontrol: ctl(oldRunFailed), sacct: acct(oldRunFailed)},
		{at: 200 * time.Millisecond, scontrol: ctl(requeued), sacct: acct(requeued)},
		{at: 400 * time.Millisecond, scontrol: ctl(running2), sacct: acct(running2)},
		{at: 700 * time.Millisecond, sentinel: sentinelAt(0, t1.Add(time.Minute)), scontrol: ctl(done2), sacct: acct(done2)},
	}}
	c := tl.client(fastPolicy, t.Logf)
	final, changes, err := watchChanges(t, c, 5*time.Second)
	if err != nil || final.State != "COMPLETED" || final.Restarts != 1 {
		t.Fatalf("%+v %v (changes %q)", final, err, states(changes))
	}
	if got := states(changes); strings.Contains(got, "FAILED") {
		t.Errorf("changes %q: the requeued run's end was reported", got)
	}
}

// A requeued job that really ends before it runs again is reported, once
// the doubt has had its time.
func TestWatchRequeuedRunEndBelievedInTheEnd(t *testing.T) {
	t1 := t0.Add(10 * time.Minute)
	requeued := job{state: "PENDING", reason: "BeginTime", restarts: 1, start: t1}
	oldRunFailed := job{state: "FAILED", exit: "1:0", nodes: "node[1-2]", restarts: 1, start: t0, end: t0.Add(2 * time.Minute)}
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: ctl(running), sacct: acct(running)},
		{at: 100 * time.Millisecond, scontrol: ctl(requeued), sacct: acct(requeued)},
		{at: 150 * time.Millisecond, sentinel: sentinelAt(1, t0.Add(2*time.Minute)), scontrol: ctl(oldRunFailed), sacct: acct(oldRunFailed)},
	}}
	c := tl.client(fastPolicy, t.Logf)
	final, _, err := watchChanges(t, c, 5*time.Second)
	if err != nil || final.State != "FAILED" {
		t.Fatalf("%+v %v", final, err)
	}
	if el := tl.elapsed(); el < 150*time.Millisecond+requeueDoubtPolls*fastPolicy.FastPoll {
		t.Errorf("believed after %s, before the doubt's %s", el, requeueDoubtPolls*fastPolicy.FastPoll)
	}
}

func TestWatchAttachAfterRequeueIgnoresOldSentinel(t *testing.T) {
	requeued := job{state: "PENDING", reason: "BeginTime", restarts: 1}
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: ctl(requeued), sacct: acct(requeued), sentinel: sentinelAt(143, t0)},
	}}
	c := tl.client(fastPolicy, t.Logf)
	final, _, err := watchChanges(t, c, 500*time.Millisecond)
	if !errors.Is(err, context.Canceled) || tl.elapsed() != 500*time.Millisecond || final.State != "PENDING" {
		t.Fatalf("%+v %v after %s: a pending job's old sentinel ended the watch", final, err, tl.elapsed())
	}
	// The stale sentinel costs one confirmation, not one per read.
	if n := tl.controllerCalls(); n > 4 {
		t.Errorf("controller asked %d times in 500 ms", n)
	}
}

func TestWatchSacctLagDoesNotGoBack(t *testing.T) {
	// Accounting says PENDING for a while after the controller says
	// RUNNING (seen on the test cluster for the first seconds of a job).
	done := job{state: "COMPLETED", nodes: "node[1-2]", start: t0, end: t0.Add(time.Minute)}
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: ctl(running), sacct: acct(job{state: "PENDING", nodes: "node1"})},
		{at: 300 * time.Millisecond, sacct: acct(running)},
		{at: 500 * time.Millisecond, sentinel: sentinelAt(0, t0.Add(time.Minute)), scontrol: ctl(done)},
	}}
	c := tl.client(fastPolicy, t.Logf)
	final, changes, err := watchChanges(t, c, 5*time.Second)
	if err != nil || final.State != "COMPLETED" {
		t.Fatalf("%+v %v", final, err)
	}
	if got := states(changes); got != "RUNNING COMPLETED" {
		t.Errorf("changes %q: lagging accounting moved the state back", got)
	}
}

func TestWatchToleratesControllerOutage(t *testing.T) {
	down := &answer{stderr: "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n", code: 1}
	done := job{state: "FAILED", nodes: "node[1-2]", start: t0, end: t0.Add(time.Minute), exit: "3:0", reason: "NonZeroExitCode"}
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: down, sacct: acct(running)},
		{at: 150 * time.Millisecond, sentinel: sentinelAt(3, t0.Add(time.Minute)), sacct: acct(done)},
		{at: 250 * time.Millisecond, scontrol: ctl(done)},
	}}
	c := tl.client(fastPolicy, t.Logf)
	final, changes, err := watchChanges(t, c, 5*time.Second)
	if err != nil || final.State != "FAILED" || final.ExitCode != 3 {
		t.Fatalf("%+v %v", final, err)
	}
	if len(changes) == 0 || changes[0].State != "RUNNING" || changes[0].Source != "sacct" {
		t.Errorf("changes %v: accounting should have told RUNNING while the controller was down", changes)
	}
}

// A read that never answers (a stuck session, a hung file system) is
// abandoned after PollTimeout and the watch goes on to notice the end.
func TestWatchAbandonsAHungPoll(t *testing.T) {
	done := job{state: "COMPLETED", nodes: "node[1-2]", start: t0, end: t0.Add(time.Minute)}
	tl := &timeline{t: t, hangs: 2, steps: []step{
		{at: 0, scontrol: ctl(running), sacct: acct(running)},
		{at: 100 * time.Millisecond, sentinel: sentinelAt(0, t0.Add(time.Minute)), scontrol: ctl(done)},
	}}
	p := fastPolicy
	p.PollTimeout = 20 * time.Millisecond // real time: the hang is real
	var logs []string
	var mu sync.Mutex
	c := tl.client(p, func(f string, a ...any) {
		mu.Lock()
		logs = append(logs, fmt.Sprintf(f, a...))
		mu.Unlock()
	})
	final, _, err := watchChanges(t, c, 5*time.Second)
	if err != nil || final.State != "COMPLETED" {
		t.Fatalf("%+v %v", final, err)
	}
	mu.Lock()
	defer mu.Unlock()
	abandoned := 0
	for _, l := range logs {
		if strings.Contains(l, "no answer within the poll timeout") {
			abandoned++
		}
	}
	if abandoned != 2 {
		t.Errorf("%d abandoned reads logged, want 2: %q", abandoned, logs)
	}
}

func TestWatchPurgedWithoutAccounting(t *testing.T) {
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: &answer{stderr: invalidJobID, code: 1}, sacct: &answer{stderr: accountingDisabled, code: 1}},
	}}
	c := tl.client(fastPolicy, nil)
	_, _, err := watchChanges(t, c, 5*time.Second)
	if !errors.Is(err, ErrAccountingDisabled) {
		t.Fatalf("got %v", err)
	}
}

// Without accounting, a job whose end the controller showed (COMPLETING)
// and then forgot before the next look has ended: CI met it with
// MinJobAge=5 and a job COMPLETING for a minute.
func TestWatchCompletingThenPurgedWithoutAccounting(t *testing.T) {
	completing := job{state: "COMPLETING", nodes: "node[1-2]", start: t0, exit: "1:0"}
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: ctl(running), sacct: &answer{stderr: accountingDisabled, code: 1}},
		{at: 200 * time.Millisecond, scontrol: ctl(completing)},
		{at: 2500 * time.Millisecond, scontrol: &answer{stderr: invalidJobID, code: 1}},
	}}
	c := tl.client(fastPolicy, t.Logf)
	final, _, err := watchChanges(t, c, 5*time.Second)
	if err != nil || final.State != "COMPLETING" || !final.Completing || final.ExitCode != 1 {
		t.Fatalf("%+v %v, want COMPLETING with Completing set and the exit code kept", final, err)
	}
}

// Without accounting, a job the controller showed RUNNING and then forgot
// before any look saw its end (no sentinel: the EXIT trap was killed by
// the job's own scancel; CI met it with MinJobAge=5) has ended all the
// same; its final state is gone. The watch ends with that, not an error,
// so that pytest's code in the job's log still decides.
func TestWatchRunningThenPurgedWithoutAccounting(t *testing.T) {
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: ctl(running), sacct: &answer{stderr: accountingDisabled, code: 1}},
		{at: 2500 * time.Millisecond, scontrol: &answer{stderr: invalidJobID, code: 1}},
	}}
	c := tl.client(fastPolicy, t.Logf)
	final, _, err := watchChanges(t, c, 5*time.Second)
	if err != nil || final.State != "" || !final.EndUnrecorded || final.Live() || final.NodeList != running.nodes {
		t.Fatalf("%+v %v, want an end with State unknown, EndUnrecorded set and the nodes kept", final, err)
	}
}

func TestWatchUnknownJobGivesUp(t *testing.T) {
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: &answer{stderr: invalidJobID, code: 1}, sacct: &answer{}},
	}}
	c := tl.client(fastPolicy, nil)
	_, _, err := watchChanges(t, c, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "neither slurmctld nor accounting knows it") {
		t.Fatalf("got %v", err)
	}
}

// A job cancelled while Slurm requeued it can keep accounting's REQUEUED
// record after the controller forgot it (seen on the test cluster): the
// watch must not wait for it forever.
func TestWatchPurgedEndNeverRecorded(t *testing.T) {
	requeued := job{state: "REQUEUED", nodes: "node1", start: t0}
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: &answer{stderr: invalidJobID, code: 1}, sacct: acct(requeued)},
	}}
	c := tl.client(fastPolicy, nil)
	_, _, err := watchChanges(t, c, 2*unrecordedEndPatience)
	if err == nil || !strings.Contains(err.Error(), "accounting still says REQUEUED: Slurm never recorded its end") {
		t.Fatalf("got %v", err)
	}
	if el := tl.elapsed(); el < unrecordedEndPatience {
		t.Errorf("gave up after %s, before accounting had %s to catch up", el, unrecordedEndPatience)
	}
}

func TestWatchPurgedAccountingCatchesUp(t *testing.T) {
	done := job{state: "COMPLETED", nodes: "node1", start: t0, end: t0.Add(time.Minute)}
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: &answer{stderr: invalidJobID, code: 1}, sacct: acct(running)},
		{at: unrecordedEndPatience / 2, sacct: acct(done)},
	}}
	c := tl.client(fastPolicy, nil)
	final, _, err := watchChanges(t, c, 2*unrecordedEndPatience)
	if err != nil || final.State != "COMPLETED" {
		t.Fatalf("%+v %v", final, err)
	}
}

func TestWatchUnreachable(t *testing.T) {
	gone := transport.Unreachable(errors.New("ssh root@x:22: still unreachable after 9 attempts"))
	lost := transport.Unreachable(fmt.Errorf("ssh: %w", transport.ErrConnectionLost))
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: ctl(running), sacct: acct(running)},
		{at: 50 * time.Millisecond, sacct: &answer{err: lost}}, // polled through
		{at: 100 * time.Millisecond, sacct: &answer{err: gone}},
	}}
	c := tl.client(fastPolicy, t.Logf)
	_, _, err := watchChanges(t, c, 5*time.Second)
	if !errors.Is(err, transport.ErrUnreachable) || errors.Is(err, transport.ErrConnectionLost) {
		t.Fatalf("got %v", err)
	}
}

// The controller's share of a long watch: first look, the safety net
// every ControllerEvery stretched while sacct agrees, one confirmation.
func TestWatchControllerBudget(t *testing.T) {
	done := job{state: "COMPLETED", nodes: "node[1-2]", start: t0, end: t0.Add(time.Hour)}
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: ctl(running), sacct: acct(running)},
		{at: 3 * time.Second, sentinel: sentinelAt(0, t0.Add(time.Hour)), scontrol: ctl(done), sacct: acct(done)},
	}}
	c := tl.client(fastPolicy, nil)
	final, _, err := watchChanges(t, c, 10*time.Second)
	if err != nil || final.State != "COMPLETED" {
		t.Fatalf("%+v %v", final, err)
	}
	// 3 s = 10 ControllerEvery; stretched 4x that is 2-3 safety-net polls,
	// plus the first look and the confirmation.
	n := tl.controllerCalls()
	t.Logf("controller asked %d times at %v; sentinel read %d times, sacct %d", n, tl.scontrols, tl.sentinels, tl.saccts)
	if n > 5 {
		t.Errorf("controller asked %d times in 10 ControllerEvery", n)
	}
}

func TestWatchControllerDownAccountingHasTheEnd(t *testing.T) {
	down := &answer{stderr: "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n", code: 1}
	done := job{state: "FAILED", nodes: "node[1-2]", start: t0, end: t0.Add(time.Minute), exit: "3:0"}
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: down, sacct: acct(running)},
		{at: 100 * time.Millisecond, sentinel: sentinelAt(3, t0.Add(time.Minute)), sacct: acct(done)},
	}}
	c := tl.client(fastPolicy, t.Logf)
	final, _, err := watchChanges(t, c, 5*time.Second)
	if err != nil || final.State != "FAILED" || final.ExitCode != 3 || final.Source != "sacct" {
		t.Fatalf("%+v %v", final, err)
	}
}

func TestWatchNoticesStartByOutputFile(t *testing.T) {
	// Accounting lags the start by seconds, and the controller is asked
	// every ControllerEvery only; the output file appearing is the start.
	// With accounting, sacct (free) is then asked every FastPoll until it
	// knows; without, the controller once.
	disabled := &answer{stderr: accountingDisabled, code: 1}
	for _, withAccounting := range []bool{true, false} {
		t.Run(fmt.Sprint("accounting=", withAccounting), func(t *testing.T) {
			done := job{state: "COMPLETED", nodes: "node[1-2]", start: t0, end: t0.Add(time.Minute)}
			first := step{at: 0, scontrol: ctl(pending), sacct: acct(pending), out: str("")}
			if !withAccounting {
				first.sacct = disabled
			}
			tl := &timeline{t: t, steps: []step{
				first,
				{at: 100 * time.Millisecond, scontrol: ctl(running), out: str("0 1795730000")},
				{at: 150 * time.Millisecond, sacct: acct(running)},
				{at: 500 * time.Millisecond, sentinel: sentinelAt(0, t0.Add(time.Minute)), scontrol: ctl(done)},
			}}
			if !withAccounting {
				tl.steps[2].sacct = disabled
			}
			var runningAt time.Duration
			// sacct's and the controller's own polls come too late to
			// tell the start here.
			slow := Policy{FastPoll: 10 * time.Millisecond, SlowPoll: 400 * time.Millisecond, ControllerEvery: 2 * time.Second}
			c := tl.client(slow, t.Logf)
			final, err := c.Watch(tl.clock.context(t, 5*time.Second), "9", "/ws/job-finished", func(s JobState) {
				if s.State == "RUNNING" && runningAt == 0 {
					runningAt = tl.elapsed()
				}
			})
			if err != nil || final.State != "COMPLETED" {
				t.Fatalf("%+v %v", final, err)
			}
			// With accounting: first look and end; the start came from
			// sacct. Without: the start too.
			want, calls := 180*time.Millisecond, 2
			if !withAccounting {
				want, calls = 150*time.Millisecond, 3
			}
			if runningAt == 0 || runningAt > want {
				t.Errorf("RUNNING reported at %s, want by %s", runningAt, want)
			}
			if n := tl.controllerCalls(); n != calls {
				t.Errorf("controller asked %d times at %v, want %d", n, tl.scontrols, calls)
			}
			// Once running, the output file is not looked at any more.
			tl.mu.Lock()
			stats, reads := tl.stats, tl.sentinels
			tl.mu.Unlock()
			if stats == 0 || stats > 18 || reads < 30 {
				t.Errorf("%d of %d sentinel reads looked at the output file", stats, reads)
			}
		})
	}
}

func TestWatchPendingOutputFileUnchanged(t *testing.T) {
	// A requeued job's output file exists from the last run: only a
	// change counts, and a change while still pending holds further
	// checks off for ControllerEvery.
	requeued := job{state: "PENDING", reason: "BeginTime", restarts: 1}
	tl := &timeline{t: t, steps: []step{
		{at: 0, scontrol: ctl(requeued), sacct: &answer{stderr: accountingDisabled, code: 1}, out: str("500 1795730000")},
		{at: 100 * time.Millisecond, out: str("510 1795730001")},
		{at: 150 * time.Millisecond, out: str("520 1795730002")},
	}}
	c := tl.client(fastPolicy, t.Logf)
	_, err := c.Watch(tl.clock.context(t, 250*time.Millisecond), "9", "/ws/job-finished", nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("a pending job ended the watch: %v", err)
	}
	if n := tl.controllerCalls(); n != 2 {
		t.Errorf("controller asked %d times at %v, want 2 (first look, one change)", n, tl.scontrols)
	}
}
