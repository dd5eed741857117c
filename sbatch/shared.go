package sbatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/shellquote"
	"github.com/disagg-runner/disagg-runner/internal/transport"
)

// The watches of one Client share their Slurm queries: a run of several
// tests watches several jobs over one connection, and slurmctld should pay
// for the run what it pays for one job. Each watch keeps its own logic
// (watch.go) and asks for the answer it needs no older than some age; a
// query that another watch started recently enough, for every job being
// watched, serves it. Without a fitting one, a new query asks about every
// job being watched at once:
//
//   - the controller: `scontrol show job -o` for all jobs, filtered on the
//     login node (1 RPC, REQUEST_JOB_INFO, for any number of jobs, where
//     one job's `scontrol show job -o ID` is 2: FED_INFO and
//     JOB_INFO_SINGLE); with one job watched, that job's own query, as
//     before;
//   - accounting: one `sacct -j a,b,c`.
//
// A watch that takes a shared answer also takes its time as the time of
// its last poll, so that after one round the watches' schedules line up
// and the next round serves them all.

// jobAnswer is one job's part of a shared query.
type jobAnswer struct {
	s   JobState
	err error
}

// round is one query made for a set of jobs.
type round struct {
	start time.Time
	ids   map[JobID]bool
	// asked: the query went out; until then a request may still add its
	// job to ids.
	asked bool
	done  chan struct{}
	res   map[JobID]jobAnswer
}

// sharedQuery is one kind of query (controller, accounting) shared by the
// watches of a Client.
type sharedQuery struct {
	mu     sync.Mutex
	rounds []*round // oldest first; in flight or finished
}

// keptRounds bounds the rounds remembered: only the newest few can be
// fresh enough for anyone.
const keptRounds = 4

// get returns id's answer from a round that starts no earlier than
// maxAge before now (0: now or later), starting one for ids() and id when
// there is none, and the round's start. With several jobs watched, a new
// round waits gather before it asks, so that the watches that want a
// fresh answer at about the same moment (their first look after a burst
// of submissions, the ends of jobs that end together) share it.
func (q *sharedQuery) get(ctx context.Context, now time.Time, id JobID, maxAge, gather time.Duration, ids func() []JobID, together func(int) bool,
	sleep func(context.Context, time.Duration) error, ask func(context.Context, []JobID) map[JobID]jobAnswer) (JobState, time.Time, error) {
	q.mu.Lock()
	var r *round
	for i := len(q.rounds) - 1; i >= 0; i-- {
		c := q.rounds[i]
		if c.start.Before(now.Add(-maxAge)) || !(c.ids[id] || !c.asked) {
			continue
		}
		c.ids[id] = true
		r = c
		break
	}
	if r != nil {
		q.mu.Unlock()
		select {
		case <-r.done:
		case <-ctx.Done():
			return JobState{ID: id}, now, ctx.Err()
		}
	} else {
		others := ids()
		if !together(len(others)) {
			gather = 0
		}
		r = &round{start: now.Add(gather), ids: map[JobID]bool{id: true}, done: make(chan struct{})}
		for _, other := range others {
			r.ids[other] = true
		}
		q.rounds = append(q.rounds, r)
		if len(q.rounds) > keptRounds {
			q.rounds = slices.Delete(q.rounds, 0, len(q.rounds)-keptRounds)
		}
		q.mu.Unlock()
		var err error
		if gather > 0 {
			err = sleep(ctx, gather)
		}
		q.mu.Lock()
		r.asked = true
		all := make([]JobID, 0, len(r.ids))
		for j := range r.ids {
			all = append(all, j)
		}
		q.mu.Unlock()
		slices.Sort(all)
		if err == nil {
			r.res = ask(ctx, all)
		} else {
			r.res = map[JobID]jobAnswer{}
			for _, j := range all {
				r.res[j] = jobAnswer{JobState{ID: j}, err}
			}
		}
		close(r.done)
	}
	a, ok := r.res[id]
	if !ok {
		return JobState{ID: id}, r.start, fmt.Errorf("job %s: no answer in the shared query", id)
	}
	return a.s, r.start, a.err
}

// ExpectJobs tells the Client that n jobs will be watched together (a run
// of a test list): its shared rounds gather the watches' requests from
// the first one on, not only once a second watch has begun.
func (c *Client) ExpectJobs(n int) {
	c.mu.Lock()
	c.expect = n
	c.mu.Unlock()
}

// together reports whether several jobs are, or are about to be, watched.
func (c *Client) together(watched int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return watched >= 2 || c.expect >= 2
}

// watched is every job a watch of this Client follows right now.
func (c *Client) watched() []JobID {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]JobID, 0, len(c.watching))
	for id := range c.watching {
		ids = append(ids, id)
	}
	return ids
}

// watch adds id to the jobs being watched; the function returned takes it
// away again.
func (c *Client) watch(id JobID) func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watching == nil {
		c.watching = map[JobID]int{}
	}
	c.watching[id]++
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.watching[id]--; c.watching[id] <= 0 {
			delete(c.watching, id)
		}
	}
}

// sharedController is Query for a watch: an answer from the controller
// (or accounting, for a job the controller forgot) no older than maxAge;
// a new round waits gather for others (with several jobs watched).
func (c *Client) sharedController(ctx context.Context, clk clock, id JobID, maxAge, gather time.Duration) (JobState, time.Time, error) {
	return c.ctrl.get(ctx, clk.Now(), id, maxAge, gather, c.watched, c.together, clk.Sleep, c.queryMany)
}

// sharedSacct is sacct for a watch, shared the same way.
func (c *Client) sharedSacct(ctx context.Context, clk clock, id JobID, maxAge time.Duration) (JobState, time.Time, error) {
	return c.acct.get(ctx, clk.Now(), id, maxAge, c.Policy.fastPoll()/4, c.watched, c.together, clk.Sleep, c.sacctMany)
}

// queryMany is Query for several jobs in one controller RPC: the jobs the
// controller no longer lists are asked of accounting, together.
func (c *Client) queryMany(ctx context.Context, ids []JobID) map[JobID]jobAnswer {
	res := map[JobID]jobAnswer{}
	if len(ids) == 1 {
		s, err := c.Query(ctx, ids[0])
		res[ids[0]] = jobAnswer{s, err}
		return res
	}
	alts := make([]string, len(ids))
	for i, id := range ids {
		alts[i] = string(id) // digits and _ only (ValidJobID): no regexp or shell meaning
	}
	// The controller's exit status travels as a last line, as grep's own
	// would hide it; every job is one line with -o.
	pattern := "^(JobId=(" + strings.Join(alts, "|") + ") |" + rcMark + ")"
	cmd := "{ " + slurmEnv + "scontrol show job -o; echo " + rcMark + "$?; } | grep -E " + shellquote.Quote(pattern)
	out, err := c.run(ctx, cmd)
	lines := strings.Split(out.stdout, "\n")
	rc := ""
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, rcMark); ok {
			rc = v
		}
	}
	if err != nil || rc != "0" {
		if err == nil {
			// As the transport says it of a command that exited non-zero,
			// so that Slurm's message is what the error says.
			code, cerr := strconv.Atoi(rc)
			if cerr != nil {
				code = -1
			}
			err = &transport.ExitError{Cmd: "scontrol show job -o", Code: code}
		}
		err = commandError("scontrol show job", out, err)
		for _, id := range ids {
			res[id] = jobAnswer{JobState{ID: id, Source: "scontrol"}, err}
		}
		return res
	}
	var forgotten []JobID
	for _, id := range ids {
		var mine []string
		for _, l := range lines {
			if strings.HasPrefix(l, "JobId="+string(id)+" ") {
				mine = append(mine, l)
			}
		}
		if len(mine) == 0 {
			forgotten = append(forgotten, id)
			continue
		}
		s, err := parseScontrol(id, strings.Join(mine, "\n"))
		res[id] = jobAnswer{s, err}
	}
	if len(forgotten) > 0 {
		for id, a := range c.sacctMany(ctx, forgotten) {
			if errors.Is(a.err, ErrAccountingDisabled) {
				a.err = fmt.Errorf("job %s: slurmctld no longer knows it (finished jobs are forgotten after MinJobAge) and %w, so its final state cannot be read", id, a.err)
			}
			res[id] = a
		}
	}
	return res
}

// rcMark starts the line that carries a command's exit status through a
// pipe.
const rcMark = "disagg-rc="

// sacctMany is sacct for several jobs in one call.
func (c *Client) sacctMany(ctx context.Context, ids []JobID) map[JobID]jobAnswer {
	res := map[JobID]jobAnswer{}
	if len(ids) == 1 {
		s, err := c.sacct(ctx, ids[0])
		res[ids[0]] = jobAnswer{s, err}
		return res
	}
	list := make([]string, len(ids))
	for i, id := range ids {
		list[i] = string(id)
	}
	out, err := c.sacctRun(ctx, strings.Join(list, ","))
	if err != nil {
		for _, id := range ids {
			res[id] = jobAnswer{JobState{ID: id, Source: "sacct"}, err}
		}
		return res
	}
	for _, id := range ids {
		var mine []string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, string(id)+"|") {
				mine = append(mine, l)
			}
		}
		s, err := parseSacct(id, strings.Join(mine, "\n"))
		res[id] = jobAnswer{s, err}
	}
	return res
}

// Answer is one job's state in QueryMany's answer, or why it could not
// be read.
type Answer struct {
	State JobState
	Err   error
}

// QueryMany is Query for several jobs at once: one controller RPC for all
// of them (one job alone: Query), and one sacct for those the controller
// forgot.
func (c *Client) QueryMany(ctx context.Context, ids []JobID) map[JobID]Answer {
	res := map[JobID]Answer{}
	for id, a := range c.queryMany(ctx, ids) {
		res[id] = Answer{a.s, a.err}
	}
	return res
}
