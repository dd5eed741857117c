package sbatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/transport"
)

// sacctTrustedStretch is how much longer the controller's safety-net
// interval gets while sacct agrees with the controller: sacct then sees
// every end the sentinel cannot (SIGKILL, node failure, cancel while
// pending) within SlowPoll, so the controller is only asked in case
// accounting silently stops being updated.
const sacctTrustedStretch = 4

// noAccountingStretch is how much longer the safety-net interval gets
// while a job runs on a cluster without accounting. The sentinel ends the
// watch within seconds for every end that runs the job's EXIT trap; the
// controller is only the net for the rest (SIGKILL, node failure), and at
// 2 RPCs every 30 s it alone would spend the whole budget of 6 per minute
// on a short job (first look, start and end cost 2 each).
const noAccountingStretch = 3

// sacctBoostFor is how many FastPolls sacct is asked that often after the
// output file showed the start: accounting records a start up to about 5 s
// after the controller.
const sacctBoostFor = 10

// unknownGiveUp is how many controller polls in a row may find the job
// unknown to both the controller and accounting before Watch gives up on
// it: long enough for accounting to catch up with a fresh submission,
// short enough that a wrong id does not hang the runner.
const unknownGiveUp = 3

// unrecordedEndPatience is how long Watch waits for accounting to record
// the end of a job the controller has forgotten: slurmctld sends its
// records to slurmdbd in the background, so they can trail it.
const unrecordedEndPatience = 2 * time.Minute

// Watch follows the job until it ends and returns its confirmed final
// state, calling onChange (when not nil) for every change worth telling:
// state, reason, nodes, restarts, expected start.
//
// How it notices the end within seconds while asking slurmctld rarely:
//
//   - Every FastPoll it reads finishedFile, which the job's EXIT trap
//     writes as "<rc> <epoch>". Reading a file costs the controller
//     nothing. A new, complete line whose epoch is not older than the
//     current run's start is the end of this run; the controller is then
//     asked to confirm (again after short delays while it still says
//     RUNNING or COMPLETING). A line from before a requeue is ignored.
//   - Every SlowPoll it asks sacct (no controller RPC), when the cluster
//     has accounting (found out on the first call). sacct moves the state
//     forward only (PENDING → RUNNING → ended): it lags the controller by
//     a second or more and must not undo what the controller said. A
//     REQUEUED, or sacct going back by itself, makes Watch ask the
//     controller at once; an end seen by sacct is confirmed with the
//     controller.
//   - Every ControllerEvery it asks the controller (scontrol, 2 RPCs) as
//     the safety net for ends that leave no sentinel and for a pending
//     job's reason and expected start. While the job runs and sacct
//     agrees with the controller, that interval is stretched
//     sacctTrustedStretch times; with several jobs watched (shared.go),
//     also while the job is pending.
//   - While the job is pending, the sentinel read also stats the job's
//     output file (StdOut, from the controller): when it appears or
//     changes the job has started, and sacct is asked every FastPoll
//     until it records the start (with accounting) or the controller once
//     (without).
//
// With accounting that is 2 controller queries per run (first look, end)
// plus 1 every 4×ControllerEvery while sacct agrees: 4 RPCs over a
// one-minute job (measured on the test cluster), about 1 per minute over
// a long one. Without accounting: first look, start, end, and 1 every
// 3×ControllerEvery while the job runs (every ControllerEvery while it is
// pending): 6 RPCs over a one-minute job, about 1.3 per minute over a long
// one. The price: an end that leaves no sentinel (SIGKILL, node failure)
// is noticed up to 90 s late on such a cluster, and with a MinJobAge
// shorter than that (the default is 300 s) its final state is lost.
//
// Errors from Slurm's commands (a controller restarting, say) are logged
// and polled through; when the controller cannot be reached at all, an end
// that accounting recorded is taken as final. A transport that cannot
// reach the node any more, or a job id nobody knows end the watch with an
// error. A job the controller forgets on a cluster without accounting
// before its end was seen (MinJobAge shorter than the safety net's period,
// and no sentinel) has ended all the same: it comes back with
// EndUnrecorded set and State "".
func (c *Client) Watch(ctx context.Context, id JobID, finishedFile string, onChange func(JobState)) (JobState, error) {
	w := &watcher{c: c, clock: c.clock, id: id, file: finishedFile, onChange: onChange}
	if w.clock == nil {
		w.clock = realClock{}
	}
	defer c.watch(id)()
	return w.run(ctx)
}

type accounting int

const (
	accountingUnknown accounting = iota
	accountingOn
	accountingOff
)

type watcher struct {
	c        *Client
	clock    clock
	id       JobID
	file     string
	onChange func(JobState)

	cur      JobState // merged view: the controller's, moved forward by sacct
	reported JobState // what onChange last saw
	anything bool     // onChange was called at least once

	acct         accounting
	sacctRank    int    // rank of sacct's last answer; -1 before it had one
	sacctState   string // sacct's last answer
	sacctTrusted bool   // sacct's last answer matched the controller's state
	sacctErrs    int    // failed sacct calls in a row, to keep the log short
	confirmHold  time.Time

	nextSacct  time.Time
	sacctBoost time.Time // until then sacct is asked every FastPoll

	lastController time.Time
	answers        int      // the controller's answers so far
	lastSacct      JobState // accounting's last answer
	unknownPolls   int
	// Since when the controller has forgotten the job while accounting
	// says it has not ended.
	unrecordedSince time.Time

	consumed     string    // sentinel content already acted on
	nextSentinel time.Time // when the sentinel is read next

	// gather is how long a new shared controller round waits for the
	// other watches' requests (sharedQuery.get).
	gather time.Duration

	// The start of the run last seen requeued, and until when an end
	// that belongs to that run is doubted (see doubtRequeuedEnd).
	requeuedRunStart time.Time
	doubtUntil       time.Time

	// The output file of a pending job, looked at to notice its start.
	outputPath string
	outputSeen bool   // outputStat holds the baseline
	outputStat string // "size mtime", or "" while missing
	outputHold time.Time
}

func (w *watcher) run(ctx context.Context) (JobState, error) {
	fast, slow := w.c.Policy.fastPoll(), w.c.Policy.slowPoll()
	w.sacctRank = -1
	w.cur = JobState{ID: w.id}

	// The first look is not urgent (the job was just submitted), and the
	// jobs of a run are submitted in a burst: it waits longer for the
	// others' first looks to share its round.
	w.gather = 2 * fast
	done, err := w.pollController(ctx, 0)
	w.gather = fast / 4
	if done || err != nil {
		return w.cur, err
	}
	now := w.clock.Now()
	w.nextSentinel = now
	// sacct at once: it costs the controller nothing, and whether the
	// cluster has accounting decides how the start is looked for.
	w.nextSacct = now
	for {
		nextController := w.lastController.Add(w.controllerInterval())
		next := w.nextSentinel
		if w.acct != accountingOff && w.nextSacct.Before(next) {
			next = w.nextSacct
		}
		if nextController.Before(next) {
			next = nextController
		}
		if err := w.clock.Sleep(ctx, next.Sub(w.clock.Now())); err != nil {
			return w.cur, err
		}
		now = w.clock.Now()

		if !now.Before(w.nextSentinel) {
			w.nextSentinel = now.Add(fast)
			done, err := w.pollSentinel(ctx)
			if done || err != nil {
				return w.cur, err
			}
		}
		if w.acct != accountingOff && !now.Before(w.nextSacct) {
			w.nextSacct = now.Add(slow)
			if now.Before(w.sacctBoost) {
				w.nextSacct = now.Add(fast)
			}
			done, err := w.pollSacct(ctx)
			if done || err != nil {
				return w.cur, err
			}
		}
		if every := w.controllerInterval(); !w.clock.Now().Before(w.lastController.Add(every)) {
			done, err := w.pollController(ctx, every/2)
			if done || err != nil {
				return w.cur, err
			}
		}
	}
}

// controllerInterval is the safety net's period for the current
// situation.
func (w *watcher) controllerInterval() time.Duration {
	every := w.c.Policy.controllerEvery()
	// A pending job's reason and expected start come from the controller
	// alone; with several jobs watched (a run of a test list, whose jobs
	// queue behind each other) they are asked for as rarely as a running
	// job's state: sacct still sees the start and a cancel while pending,
	// and the output file tells the start within seconds.
	if w.acct == accountingOn && w.sacctTrusted && w.cur.Known && (w.cur.State != "PENDING" || w.c.watchCount() > 1) {
		return sacctTrustedStretch * every
	}
	if w.acct == accountingOff && w.cur.Known && w.cur.State != "PENDING" {
		return noAccountingStretch * every
	}
	return every
}

// pollController asks the controller (or accounting, once the controller
// forgot the job) and takes its answer as the truth. An answer another
// watch of the Client asked for no more than maxAge ago will do (0: one
// asked from now on).
func (w *watcher) pollController(ctx context.Context, maxAge time.Duration) (done bool, err error) {
	now := w.clock.Now()
	w.lastController = now
	s, err := bounded(ctx, w.c.Policy.pollTimeout(), func(ctx context.Context) (JobState, error) {
		s, asked, err := w.c.sharedController(ctx, w.clock, w.id, maxAge, w.gather)
		w.lastController = asked
		return s, err
	})
	if err != nil {
		if errors.Is(err, ErrAccountingDisabled) {
			if w.cur.State == "COMPLETING" {
				// The controller showed the end and forgot the job (MinJobAge
				// after Slurm stopped its processes, which can take a minute)
				// before it was asked again: the final state is gone, the end
				// is not. As Cancel does without accounting, COMPLETING is
				// the answer, marked Completing.
				w.c.logf("watch job %s: slurmctld forgot the job after COMPLETING and there is no accounting; taking COMPLETING as its end", w.id)
				w.cur.Completing = true
				return true, nil
			}
			if w.answers > 0 {
				// The controller knew the job and forgets it only MinJobAge
				// after its end: the job has ended, between two looks and
				// without a sentinel (killed in the EXIT trap, SIGKILL, a
				// node failure), and nothing kept its final state. The
				// caller gets that end, State unknown, so that the job's
				// own evidence (pytest's code in its log) still counts.
				w.c.logf("watch job %s: slurmctld forgot the job (last seen %s) before its end was seen, and there is no accounting: it has ended, its final state is unknown", w.id, w.cur.State)
				w.cur.State, w.cur.Source, w.cur.EndUnrecorded = "", "", true
				return true, nil
			}
			// The controller never knew the job, and nothing else does.
			return false, err
		}
		if fatal := w.tolerate(ctx, err); fatal != nil {
			return false, fatal
		}
		w.c.logf("watch job %s: %v (will ask again)", w.id, err)
		return false, nil
	}
	if !s.Known {
		// A job both forget is a wrong id, or one purged by the controller
		// that accounting never recorded; either way nothing will tell its
		// end.
		if w.unknownPolls++; w.unknownPolls >= unknownGiveUp {
			return false, fmt.Errorf("job %s: neither slurmctld nor accounting knows it", w.id)
		}
		return false, nil
	}
	w.unknownPolls = 0
	if s.forgottenUnended() {
		// The controller forgets a job only MinJobAge after its end (or
		// with its whole state): accounting's unfinished record is one
		// whose end it never got (seen for a job cancelled while Slurm
		// requeued it: REQUEUED for good). Nothing will end it; accounting
		// gets unrecordedEndPatience to catch up.
		if w.unrecordedSince.IsZero() {
			w.unrecordedSince = now
		} else if now.Sub(w.unrecordedSince) >= unrecordedEndPatience {
			return false, fmt.Errorf("job %s: slurmctld no longer knows it, so it has ended, but accounting still says %s: Slurm never recorded its end", w.id, s.State)
		}
	} else {
		w.unrecordedSince = time.Time{}
	}
	if w.doubtRequeuedEnd(s) {
		return false, nil
	}
	w.answers++
	w.observe(s, true)
	return w.cur.Terminal(), nil
}

// requeueDoubtPolls is how many FastPolls an end of a requeued run is
// doubted before it is believed.
const requeueDoubtPolls = 10

// doubtRequeuedEnd reports whether s, an end, is the run that was just
// requeued rather than the job's end. Right after a requeue the controller
// can still answer with that run, ended: its batch script's exit arrives
// after the requeue (seen on a loaded test cluster as FAILED with the old
// run's start, one second after PENDING with Restarts=1). Such an answer is
// asked again for requeueDoubtPolls FastPolls and only then believed, so
// that a requeued job that really ends there is still reported.
func (w *watcher) doubtRequeuedEnd(s JobState) bool {
	if !s.Terminal() || w.requeuedRunStart.IsZero() || rank(w.cur.State) != 0 ||
		s.Start.IsZero() || s.Start.After(w.requeuedRunStart) {
		return false
	}
	now := w.clock.Now()
	if w.doubtUntil.IsZero() {
		w.doubtUntil = now.Add(requeueDoubtPolls * w.c.Policy.fastPoll())
	}
	if !now.Before(w.doubtUntil) {
		return false
	}
	w.c.logf("watch job %s: slurmctld says %s for the run it requeued (started %s); asking again", w.id, s.State, s.Start.UTC().Format(time.TimeOnly))
	return true
}

// tolerate decides whether a failed poll ends the watch: only when ctx
// ended or the login node is out of reach after the transport's own
// retries. A command that ran and failed (a controller restarting, slurmdbd
// down), an odd answer, a session cut by a dropped connection (the
// transport reconnects on the next call) or a poll abandoned after
// PollTimeout are polled through.
func (w *watcher) tolerate(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, errPollTimeout) {
		return nil
	}
	if errors.Is(err, transport.ErrUnreachable) && !connectionLost(err) {
		return err
	}
	return nil
}

// errPollTimeout is a poll that did not answer within Policy.PollTimeout.
var errPollTimeout = errors.New("no answer within the poll timeout; abandoned")

// bounded runs one poll under its own deadline. Its expiry comes back as
// errPollTimeout (which the watch polls through), while ctx ending still
// comes back as ctx's own error.
func bounded[T any](ctx context.Context, limit time.Duration, poll func(context.Context) (T, error)) (T, error) {
	pctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	v, err := poll(pctx)
	if err != nil && ctx.Err() == nil && pctx.Err() != nil {
		err = fmt.Errorf("%w (%s)", errPollTimeout, limit)
	}
	return v, err
}

// stallGuard bounds a read by the time between the bytes it receives
// rather than by its length: a large transfer that keeps moving is never
// cut, one that has stalled for the limit is.
type stallGuard struct {
	limit time.Duration
	timer *time.Timer
	fired atomic.Bool
}

// guardStall returns the context to run the read under, its guard, and
// the function that releases both.
func guardStall(ctx context.Context, limit time.Duration) (context.Context, *stallGuard, context.CancelFunc) {
	gctx, cancel := context.WithCancel(ctx)
	g := &stallGuard{limit: limit}
	g.timer = time.AfterFunc(limit, func() {
		g.fired.Store(true)
		cancel()
	})
	return gctx, g, func() {
		g.timer.Stop()
		cancel()
	}
}

// wrap passes writes to w, each one proof that the read still moves.
func (g *stallGuard) wrap(w io.Writer) io.Writer {
	return writerFunc(func(b []byte) (int, error) {
		g.timer.Reset(g.limit)
		return w.Write(b)
	})
}

// err turns the cancellation the guard caused into errPollTimeout.
func (g *stallGuard) err(ctx context.Context, err error) error {
	if err != nil && ctx.Err() == nil && g.fired.Load() {
		return fmt.Errorf("%w (nothing arrived for %s)", errPollTimeout, g.limit)
	}
	return err
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// pollSacct asks accounting and lets it move the state forward.
func (w *watcher) pollSacct(ctx context.Context) (done bool, err error) {
	now, every := w.clock.Now(), w.c.Policy.slowPoll()
	if now.Before(w.sacctBoost) {
		every = w.c.Policy.fastPoll()
	}
	s, err := bounded(ctx, w.c.Policy.pollTimeout(), func(ctx context.Context) (JobState, error) {
		s, asked, err := w.c.sharedSacct(ctx, w.clock, w.id, every/2)
		// Due again one interval after the answer was asked for, so that
		// the watches sharing it stay in step.
		if due := asked.Add(every); due.Before(w.nextSacct) {
			w.nextSacct = due
		}
		return s, err
	})
	if errors.Is(err, ErrAccountingDisabled) {
		w.acct = accountingOff
		w.sacctTrusted = false
		w.c.logf("watch job %s: %v; relying on the sentinel file and on slurmctld every %s", w.id, err, w.c.Policy.controllerEvery())
		return false, nil
	}
	if err != nil {
		w.sacctTrusted = false
		if fatal := w.tolerate(ctx, err); fatal != nil {
			return false, fatal
		}
		// slurmdbd being down would otherwise fill the log every SlowPoll.
		if w.sacctErrs++; w.sacctErrs == 1 || w.sacctErrs%20 == 0 {
			w.c.logf("watch job %s: %v (failed %d time(s) in a row; will ask again)", w.id, err, w.sacctErrs)
		}
		return false, nil
	}
	w.sacctErrs = 0
	w.acct = accountingOn
	if !s.Known {
		return false, nil
	}
	w.lastSacct = s
	prevRank, prevState := w.sacctRank, w.sacctState
	w.sacctRank, w.sacctState = rank(s.State), s.State
	if s.State != prevState && (s.State == "REQUEUED" || w.sacctRank < prevRank) {
		// sacct does not go back by itself except for a requeue: let the
		// controller, which knows the new run, say what happened.
		w.c.logf("watch job %s: sacct says %s; asking slurmctld", w.id, s.State)
		return w.pollController(ctx, 0)
	}
	if s.Terminal() {
		// Not reported before the controller confirms it: its answer
		// has the signal (TIMEOUT and scancel are 0:15 there, 0:0 here).
		if w.clock.Now().Before(w.confirmHold) {
			return false, nil
		}
		if w.confirm(ctx, 0) {
			return true, nil
		}
		// The controller disagrees; do not spend its RPCs on the same
		// answer every SlowPoll.
		w.confirmHold = w.clock.Now().Add(w.c.Policy.controllerEvery())
		return false, ctx.Err()
	}
	w.observe(s, false)
	return false, nil
}

// pollSentinel reads the EXIT trap's file and, when it holds news,
// confirms the end with the controller. While the job is pending it also
// looks at the job's output file, in the same command: slurmstepd creates
// (or, after a requeue, truncates) it when the job starts, so a change
// there is the start, told within seconds without waiting for
// accounting's SlowPoll or the controller's next poll.
func (w *watcher) pollSentinel(ctx context.Context) (done bool, err error) {
	stdout := w.watchedOutput()
	fast := w.c.Policy.fastPoll()
	content, err := bounded(ctx, w.c.Policy.pollTimeout(), func(ctx context.Context) (string, error) {
		body, asked, err := w.c.sharedSentinel(ctx, w.clock, w.id, w.file, stdout, fast/2)
		// Due again one FastPoll after the read was asked for, so that the
		// watches sharing it stay in step.
		if due := asked.Add(fast); due.Before(w.nextSentinel) {
			w.nextSentinel = due
		}
		return body, err
	})
	if err != nil {
		if fatal := w.tolerate(ctx, err); fatal != nil {
			return false, fatal
		}
		w.c.logf("watch job %s: %v (will read again)", w.id, err)
		return false, nil
	}
	if stdout != "" {
		line, rest, _ := strings.Cut(content, "\n")
		content = rest
		if done, err := w.outputChanged(ctx, stdout, strings.TrimPrefix(line, "O:")); done || err != nil {
			return done, err
		}
	}
	if content == "" || content == w.consumed {
		return false, nil
	}
	rc, epoch, ok := parseSentinel(content)
	if !ok {
		// Not written whole yet (the trap's printf is one write, but a
		// shared file system may show the file before its data).
		return false, nil
	}
	w.consumed = content
	if w.cur.Known && !w.cur.Start.IsZero() && epoch < w.cur.Start.Unix() {
		w.c.logf("watch job %s: ignoring %s from a run that ended before the current one started", w.id, w.file)
		return false, nil
	}
	w.c.logf("watch job %s: the batch script exited with %d at %s", w.id, rc, time.Unix(epoch, 0).Format(time.TimeOnly))
	return w.confirm(ctx, epoch), ctx.Err()
}

// watchedOutput is the output file to look at for the start: only while
// the job is pending, and not too soon after the last time a change there
// turned out not to be the start.
func (w *watcher) watchedOutput() string {
	s := w.cur
	if !s.Known || rank(s.State) != 0 || s.StdOut == "" || s.StdOut == "/dev/null" || w.clock.Now().Before(w.outputHold) {
		w.outputSeen = false
		return ""
	}
	if s.StdOut != w.outputPath {
		w.outputPath, w.outputSeen = s.StdOut, false
	}
	return s.StdOut
}

// outputChanged compares the output file's "size mtime" with the first
// one seen while pending. A change is most likely the start: with
// accounting, sacct (free) is then asked every FastPoll for a while, until
// it records the start; without, the controller is asked once.
func (w *watcher) outputChanged(ctx context.Context, path, stat string) (bool, error) {
	if !w.outputSeen {
		w.outputSeen, w.outputStat = true, stat
		return false, nil
	}
	if stat == w.outputStat {
		return false, nil
	}
	w.outputStat = stat
	fast := w.c.Policy.fastPoll()
	if w.acct == accountingOn {
		w.c.logf("watch job %s: %s changed; asking accounting whether the job started", w.id, path)
		w.sacctBoost = w.clock.Now().Add(sacctBoostFor * fast)
		w.nextSacct = w.clock.Now()
		w.outputHold = w.sacctBoost
		return false, nil
	}
	w.c.logf("watch job %s: %s changed; asking slurmctld whether the job started", w.id, path)
	done, err := w.pollController(ctx, 0)
	if !done && err == nil && rank(w.cur.State) == 0 {
		w.outputHold = w.clock.Now().Add(w.c.Policy.controllerEvery())
	}
	return done, err
}

// parseSentinel reads "<rc> <epoch>\n". Without the newline the line may
// be incomplete.
func parseSentinel(s string) (rc int, epoch int64, ok bool) {
	if !strings.HasSuffix(s, "\n") {
		return 0, 0, false
	}
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, false
	}
	rc, err1 := strconv.Atoi(f[0])
	epoch, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return rc, epoch, true
}

// confirm asks the controller whether the job ended, a few times over a
// few seconds: right after the batch script exits the controller may
// still say RUNNING or COMPLETING. sentinelEpoch, when not 0, is the end
// the sentinel announced: a controller that shows the job pending again,
// or running since after that moment, proves the sentinel stale. When the
// controller cannot be reached at all, an end that accounting recorded is
// taken as final: slurmctld wrote that record when the job ended.
func (w *watcher) confirm(ctx context.Context, sentinelEpoch int64) bool {
	fast := w.c.Policy.fastPoll()
	if sentinelEpoch != 0 {
		// The trap runs just before the script exits, and the controller
		// learns of the end a moment later: asking within the second the
		// sentinel names mostly finds the job still RUNNING, a query spent.
		if wait := time.Unix(sentinelEpoch+1, 0).Sub(w.clock.Now()); wait > 0 {
			if w.clock.Sleep(ctx, min(wait, fast)) != nil {
				return false
			}
		}
	}
	answered := false
	for _, d := range []time.Duration{0, fast / 2, fast, 2 * fast, 4 * fast} {
		if w.clock.Sleep(ctx, d) != nil {
			return false
		}
		if w.cur.State == "COMPLETING" && w.acct == accountingOn && w.endFromAccounting(ctx) {
			return !w.requeuedAfterAll(ctx)
		}
		before := w.answers
		done, err := w.pollController(ctx, 0)
		if done {
			return !w.requeuedAfterAll(ctx)
		}
		if err != nil || w.answers == before || !w.cur.Known {
			continue
		}
		answered = true
		if sentinelEpoch != 0 && (w.cur.State == "PENDING" || (!w.cur.Start.IsZero() && sentinelEpoch < w.cur.Start.Unix())) {
			w.c.logf("watch job %s: %s is from an earlier run (job is %s); ignoring it", w.id, w.file, w.cur.State)
			return false
		}
	}
	if !answered && w.lastSacct.Terminal() {
		w.c.logf("watch job %s: slurmctld did not answer; taking accounting's final state", w.id)
		w.cur = w.lastSacct
		w.cur.Restarts = max(w.cur.Restarts, w.reported.Restarts)
		w.report()
		return true
	}
	if answered {
		w.c.logf("watch job %s: the end was announced but slurmctld still says %s; polling on", w.id, w.cur.State)
	} else {
		w.c.logf("watch job %s: the end was announced but slurmctld did not answer; polling on", w.id)
	}
	return false
}

// endFromAccounting completes an end the controller shows as COMPLETING
// with the final state accounting recorded, instead of asking the
// controller again: it says COMPLETING until Slurm has stopped the job's
// processes (a second or two; until KillWait for one that ignores
// SIGTERM), while accounting has the end from the moment the job ended,
// at no cost to slurmctld. The controller's answer keeps its exit code and
// signal (sacct's lack the signal of a scancel or a time limit), its
// restart count and its nodes. A record of another run (its start
// differs) does not count.
func (w *watcher) endFromAccounting(ctx context.Context) bool {
	s, err := bounded(ctx, w.c.Policy.pollTimeout(), func(ctx context.Context) (JobState, error) {
		s, _, err := w.c.sharedSacct(ctx, w.clock, w.id, 0)
		return s, err
	})
	if err != nil || !endOfRun(s, w.cur) {
		return false
	}
	end := w.cur
	end.State, end.CancelledBy, end.Source = s.State, s.CancelledBy, "sacct"
	if end.End.IsZero() {
		end.End = s.End
	}
	w.c.logf("watch job %s: slurmctld says COMPLETING, accounting recorded %s; taking that as the end", w.id, s.State)
	w.cur = end
	w.report()
	return true
}

// requeuedAfterAll looks once more, after requeueLook, at a requeueable
// job that the controller says failed: a run ended by `scontrol requeue`
// (or a node failure with requeue) can be reported FAILED for a moment
// before the controller shows it PENDING again (seen on a loaded test
// cluster: the batch script's exit processed before the requeue). Only
// FAILED and NODE_FAIL are asked again, and only for a job that can be
// requeued: a requeue never shows as a pass, a time limit or a cancel.
func (w *watcher) requeuedAfterAll(ctx context.Context) bool {
	if !w.cur.Requeueable || (w.cur.State != "FAILED" && w.cur.State != "NODE_FAIL") {
		return false
	}
	if w.clock.Sleep(ctx, requeueLook*w.c.Policy.fastPoll()) != nil {
		return false
	}
	if done, err := w.pollController(ctx, 0); done || err != nil || rank(w.cur.State) != 0 {
		return false
	}
	w.c.logf("watch job %s: the end was a requeue after all (now %s, restarts %d)", w.id, w.cur.State, w.cur.Restarts)
	return true
}

// requeueLook is how many FastPolls after a failed end the controller is
// asked whether it was a requeue.
const requeueLook = 2

// rank orders states by how far a run has got, so that sacct's lagging
// answers cannot move the state backwards.
func rank(state string) int {
	switch {
	case terminalStates[state]:
		return 3
	case state == "COMPLETING":
		return 2
	case state == "PENDING" || strings.HasPrefix(state, "REQUEUE") || state == "SPECIAL_EXIT" || state == "RESV_DEL_HOLD":
		return 0
	default:
		return 1
	}
}

// observe merges one answer into the current view and reports changes.
func (w *watcher) observe(s JobState, authoritative bool) {
	if authoritative {
		if w.cur.Known && (s.Restarts > w.cur.Restarts || (rank(s.State) == 0 && rank(w.cur.State) > 0)) {
			w.c.logf("watch job %s: requeued (restarts %d)", w.id, s.Restarts)
			if !w.cur.Start.IsZero() {
				w.requeuedRunStart, w.doubtUntil = w.cur.Start, time.Time{}
			}
		}
		if s.Source == "sacct" {
			// The controller forgot the job; accounting has no restart
			// count.
			s.Restarts = max(s.Restarts, w.cur.Restarts)
		}
		w.cur = s
		w.sacctTrusted = w.sacctRank == rank(s.State)
	} else {
		r, cr := rank(s.State), rank(w.cur.State)
		w.sacctTrusted = r == cr
		switch {
		case !w.cur.Known || r > cr:
			s.Restarts, s.StdOut = w.cur.Restarts, w.cur.StdOut
			w.cur = s
			w.sacctTrusted = true // the view is now sacct's own
		case s.State == w.cur.State && w.cur.NodeList == "" && s.NodeList != "":
			w.cur.NodeList = s.NodeList
		}
	}
	w.report()
}

func (w *watcher) report() {
	s := w.cur
	if !s.Known {
		return
	}
	p := w.reported
	changed := !w.anything || s.State != p.State || s.Reason != p.Reason || s.NodeList != p.NodeList ||
		s.Restarts != p.Restarts || s.CancelledBy != p.CancelledBy ||
		!s.ExpectedStart.Equal(p.ExpectedStart) ||
		(s.Terminal() && (s.ExitCode != p.ExitCode || s.Signal != p.Signal))
	if !changed {
		return
	}
	w.reported, w.anything = s, true
	if w.onChange != nil {
		w.onChange(s)
	}
}
