package sbatch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/shellquote"
)

// ErrAccountingDisabled is in the chain of errors from sacct on a cluster
// without accounting storage ("Slurm accounting storage is disabled").
// Then a job is only visible while slurmctld remembers it (MinJobAge after
// its end, 300 s by default).
var ErrAccountingDisabled = errors.New("Slurm accounting storage is disabled on this cluster")

// ErrUnknownJob is in the chain of Cancel's error for a job that neither
// the controller nor accounting knows.
var ErrUnknownJob = errors.New("Slurm does not know this job")

// errPurged is the controller's "Invalid job id specified": the job is
// unknown to slurmctld, either long finished (purged after MinJobAge) or
// never submitted.
var errPurged = errors.New("slurmctld does not know the job (Invalid job id specified)")

// Query asks Slurm once for the job's state. It asks the controller
// (`scontrol show job -o`, 2 RPCs), which knows a job from submission until
// MinJobAge after its end; when the controller answers "Invalid job id
// specified" it asks accounting (`sacct`, no controller RPC). A job neither
// knows comes back with Known=false and no error: right after sbatch,
// accounting does not know the job yet, and "unknown" must never be read
// as "finished". On a cluster without accounting, a job the controller has
// forgotten is an error wrapping ErrAccountingDisabled, which says so.
func (c *Client) Query(ctx context.Context, id JobID) (JobState, error) {
	s, err := c.scontrol(ctx, id)
	if !errors.Is(err, errPurged) {
		return s, err
	}
	s, err = c.sacct(ctx, id)
	if errors.Is(err, ErrAccountingDisabled) {
		return JobState{ID: id, Source: "sacct"}, forgottenError(id, err)
	}
	return s, err
}

// forgottenError is asking accounting about a job the controller forgot,
// on a cluster without accounting.
func forgottenError(id JobID, err error) error {
	return fmt.Errorf("job %s: slurmctld no longer knows it (finished jobs are forgotten after MinJobAge) and %w, so its final state cannot be read", id, err)
}

// scontrol asks the controller about one job.
func (c *Client) scontrol(ctx context.Context, id JobID) (JobState, error) {
	// -a: a job in a hidden partition (or one the user's group cannot
	// use) is left out of scontrol's answers without it.
	out, err := c.run(ctx, slurmEnv+"scontrol -a show job -o "+shellquote.Quote(string(id)))
	if err != nil {
		if _, ok := exitCode(err); ok && strings.Contains(out.stderr, "Invalid job id specified") {
			return JobState{ID: id, Source: "scontrol"}, errPurged
		}
		return JobState{ID: id, Source: "scontrol"}, commandError("scontrol show job "+string(id), out, err)
	}
	return parseScontrol(id, out.stdout)
}

// sacct asks accounting about one job; it costs slurmctld nothing.
func (c *Client) sacct(ctx context.Context, id JobID) (JobState, error) {
	out, err := c.sacctRun(ctx, string(id))
	if err != nil {
		return JobState{ID: id, Source: "sacct"}, err
	}
	return parseSacct(id, out)
}

// sacctRun runs sacct for a comma-separated list of job ids and returns
// its lines.
func (c *Client) sacctRun(ctx context.Context, list string) (string, error) {
	cmd := slurmEnv + "sacct -X -P -n -j " + shellquote.Quote(list) + " --format=" + sacctFields
	out, err := c.run(ctx, cmd)
	if err != nil {
		if _, ok := exitCode(err); ok && strings.Contains(out.stderr+out.stdout, "accounting storage is disabled") {
			return "", ErrAccountingDisabled
		}
		return "", commandError("sacct -j "+list, out, err)
	}
	return out.stdout, nil
}

// cancelConfirmTimeout bounds how long Cancel waits to see the job end.
// scancel's SIGTERM kills an ordinary job at once; one that ignores it is
// killed after KillWait (30 s by default), which a Jenkins abort should not
// have to wait for in full.
const cancelConfirmTimeout = 30 * time.Second

// completingPatience is how long Cancel waits for a COMPLETING job's
// final state before it takes accounting's record: long enough for an
// ordinary cleanup, so that a job is gone from squeue when Cancel returns
// (a retried run then submits anew instead of following it), and well
// below KillWait's default of 30 s.
const completingPatience = 10 * time.Second

// Cancel asks Slurm to cancel the job and confirms that it ended: scancel
// exits 0 and says nothing for an unknown or finished job, so only the
// job's state tells. It returns the last state seen; an error when the job
// had not ended after cancelConfirmTimeout (or ctx ended).
//
// A job the controller shows as COMPLETING has ended: Slurm has recorded
// its end and is only stopping what is left of its processes. That takes
// a second or two, but until KillWait for a process that ignores SIGTERM,
// and longer for one a racing kill missed (slurmstepd then waits for the
// step's output to close, 60 s). Cancel waits completingPatience for the
// final state; then it takes the end state accounting recorded (sacct
// says "CANCELLED by UID" while the controller still says COMPLETING) and
// returns it with Completing set. Without accounting it waits for the
// controller's final state until cancelConfirmTimeout and then returns
// the COMPLETING state, also with Completing set and no error.
func (c *Client) Cancel(ctx context.Context, id JobID) (JobState, error) {
	out, err := c.run(ctx, "scancel "+shellquote.Quote(string(id)))
	if err != nil {
		if ctx.Err() != nil {
			return JobState{ID: id}, ctx.Err()
		}
		// Not fatal: the state below is what counts.
		c.logf("scancel %s: %v", id, commandError("scancel", out, err))
	}
	begin := time.Now()
	deadline := begin.Add(cancelConfirmTimeout)
	wait := c.Policy.fastPoll() / 2
	var last JobState
	var lastErr error
	accounting := true
	for {
		s, err := c.Query(ctx, id)
		if err == nil {
			last, lastErr = s, nil
			if s.Terminal() {
				return s, nil
			}
			if !s.Known {
				// Neither the controller nor accounting has it: there is
				// nothing to cancel or to wait for.
				return s, fmt.Errorf("cancel job %s: %w", id, ErrUnknownJob)
			}
			if s.State == "COMPLETING" && accounting && time.Since(begin) >= completingPatience {
				rec, ok, err := c.completedRun(ctx, s)
				switch {
				case errors.Is(err, ErrAccountingDisabled):
					accounting = false
				case ok:
					return rec, nil
				}
			}
		} else {
			lastErr = err
		}
		if ctx.Err() != nil {
			return last, ctx.Err()
		}
		if time.Now().Add(wait).After(deadline) {
			if lastErr == nil && last.State == "COMPLETING" {
				last.Completing = true
				return last, nil
			}
			if lastErr != nil {
				return last, fmt.Errorf("cancel job %s: not confirmed within %s: %w", id, cancelConfirmTimeout, lastErr)
			}
			return last, fmt.Errorf("cancel job %s: still %s after %s", id, last.State, cancelConfirmTimeout)
		}
		if err := sleep(ctx, wait); err != nil {
			return last, err
		}
		wait = min(2*wait, 4*c.Policy.fastPoll())
	}
}

// Settle is Query for deciding whether a job has ended, as a rerun does
// before it follows or replaces an earlier attempt's job: a job the
// controller shows as COMPLETING has ended when accounting recorded the
// end of that run (Slurm is only stopping its processes, which can take
// until KillWait); it comes back as that record, with Completing set. A
// requeue in progress (accounting says REQUEUED) is not an end. A job
// the controller has forgotten has ended, whatever accounting last got:
// one that says otherwise comes back with EndUnrecorded set.
func (c *Client) Settle(ctx context.Context, id JobID) (JobState, error) {
	s, err := c.Query(ctx, id)
	if err == nil && s.forgottenUnended() {
		s.EndUnrecorded = true
		return s, nil
	}
	if err != nil || s.State != "COMPLETING" {
		return s, err
	}
	if rec, ok, err := c.completedRun(ctx, s); err == nil && ok {
		return rec, nil
	}
	return s, nil
}

// completedRun is accounting's record of the end of the run the
// controller shows as COMPLETING (ctl), if it has one: a final state, for
// a run with the same start.
func (c *Client) completedRun(ctx context.Context, ctl JobState) (JobState, bool, error) {
	rec, err := c.sacct(ctx, ctl.ID)
	if err != nil {
		return JobState{}, false, err
	}
	if !endOfRun(rec, ctl) {
		return JobState{}, false, nil
	}
	return recordedEnd(rec, ctl), true, nil
}

// endOfRun reports whether accounting's answer rec is a final state of
// the run the controller shows in ctl (not of an earlier run: the starts
// differ).
func endOfRun(rec, ctl JobState) bool {
	return rec.Terminal() && (rec.Start.IsZero() || ctl.Start.IsZero() || rec.Start.Equal(ctl.Start))
}

// recordedEnd is the end accounting recorded for a job the controller
// still shows as COMPLETING on the nodes in ctl.NodeList.
func recordedEnd(rec, ctl JobState) JobState {
	rec.Completing = true
	// sacct's exit code lacks the signal of a scancel or a time limit;
	// the controller set its own when the job ended.
	rec.ExitCode, rec.Signal = ctl.ExitCode, ctl.Signal
	rec.NodeList = ctl.NodeList
	rec.Restarts = ctl.Restarts
	rec.Requeueable = ctl.Requeueable
	rec.StdOut = ctl.StdOut
	return rec
}
