package sbatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
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

// result is one job's part of a shared query.
type result[T any] struct {
	v   T
	err error
}

// jobAnswer is one job's state in a shared Slurm query.
type jobAnswer = result[JobState]

// round is one query made for a set of jobs. Each job is asked about
// with its own parameters (its key: "" for a Slurm query, the files to
// read for a sentinel read).
type round[K cmp.Ordered, T any] struct {
	start time.Time
	keys  map[K]string
	// asked: the query went out; until then a request may still add its
	// job to keys.
	asked bool
	done  chan struct{}
	res   map[K]result[T]
}

// sharedQuery is one kind of query (controller, accounting, sentinel,
// log read) shared by the watches or follows of a Client; K names what
// each asks about (a job, a file).
type sharedQuery[K cmp.Ordered, T any] struct {
	mu     sync.Mutex
	rounds []*round[K, T] // oldest first; in flight or finished
}

// keptRounds bounds the rounds remembered: only the newest few can be
// fresh enough for anyone.
const keptRounds = 4

// get returns id's answer, asked with key, from a round that starts no
// earlier than maxAge before now (0: now or later), starting one for
// others() and id when there is none, and the round's start. When
// together says several jobs are watched, a new round waits gather before
// it asks, so that the watches that want a fresh answer at about the
// same moment (their first look after a burst of submissions, the ends
// of jobs that end together) share it.
func (q *sharedQuery[K, T]) get(ctx context.Context, now time.Time, id K, key string, maxAge, gather time.Duration,
	others func() map[K]string, together func(int) bool, sleep func(context.Context, time.Duration) error,
	ask func(context.Context, map[K]string) map[K]result[T]) (T, time.Time, error) {
	var zero T
	q.mu.Lock()
	var r *round[K, T]
	for i := len(q.rounds) - 1; i >= 0; i-- {
		c := q.rounds[i]
		if c.start.Before(now.Add(-maxAge)) {
			continue
		}
		if k, in := c.keys[id]; c.asked && (!in || k != key) {
			continue
		}
		c.keys[id] = key
		r = c
		break
	}
	if r != nil {
		q.mu.Unlock()
		select {
		case <-r.done:
		case <-ctx.Done():
			return zero, now, ctx.Err()
		}
	} else {
		keys := others()
		if !together(len(keys)) {
			gather = 0
		}
		r = &round[K, T]{start: now.Add(gather), keys: keys, done: make(chan struct{})}
		r.keys[id] = key
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
		keys = maps.Clone(r.keys)
		q.mu.Unlock()
		if err == nil {
			r.res = ask(ctx, keys)
		} else {
			r.res = map[K]result[T]{}
			for j := range keys {
				r.res[j] = result[T]{err: err}
			}
		}
		close(r.done)
	}
	a, ok := r.res[id]
	if !ok {
		return zero, r.start, fmt.Errorf("%v: no answer in the shared query", id)
	}
	return a.v, r.start, a.err
}

// sortedIDs are the jobs (or files) of a round, in order.
func sortedIDs[K cmp.Ordered](keys map[K]string) []K {
	return slices.Sorted(maps.Keys(keys))
}

// sentinelCmd reads a job's sentinel file and, when stdout is not "",
// first prints "O:<size> <mtime>" of its output file (see pollSentinel).
func sentinelCmd(file, stdout string) string {
	f := shellquote.Quote(file)
	cmd := "if [ -f " + f + " ]; then head -c 200 -- " + f + "; fi"
	if stdout != "" {
		cmd = "printf 'O:%s\\n' \"$(stat -c '%s %Y' -- " + shellquote.Quote(stdout) + " 2>/dev/null)\"; " + cmd
	}
	return cmd
}

// sharedSentinel is a watch's sentinel read (sentinelCmd's output), no
// older than maxAge: with several jobs watched, one command reads every
// watched job's files, each job's part framed by NULs (which the
// sentinels, digits and a newline, never hold: any are dropped).
func (c *Client) sharedSentinel(ctx context.Context, clk clock, id JobID, file, stdout string, maxAge time.Duration) (string, time.Time, error) {
	key := file + "\x00" + stdout
	c.mu.Lock()
	if c.sentinelKeys == nil {
		c.sentinelKeys = map[JobID]string{}
	}
	c.sentinelKeys[id] = key
	c.mu.Unlock()
	others := func() map[JobID]string {
		c.mu.Lock()
		defer c.mu.Unlock()
		keys := map[JobID]string{}
		for j := range c.watching {
			if k, ok := c.sentinelKeys[j]; ok {
				keys[j] = k
			}
		}
		return keys
	}
	return c.sentinels.get(ctx, clk.Now(), id, key, maxAge, c.Policy.fastPoll()/4, others, c.together, clk.Sleep, c.readSentinels)
}

// readSentinels runs the sentinel reads of a round: one job's command as
// it is, several framed in one command.
func (c *Client) readSentinels(ctx context.Context, keys map[JobID]string) map[JobID]result[string] {
	res := map[JobID]result[string]{}
	ids := sortedIDs(keys)
	if len(ids) == 1 {
		file, stdout, _ := strings.Cut(keys[ids[0]], "\x00")
		out, err := c.run(ctx, sentinelCmd(file, stdout))
		if err != nil {
			err = commandError("read "+file, out, err)
		}
		res[ids[0]] = result[string]{out.stdout, err}
		return res
	}
	var cmd strings.Builder
	for _, id := range ids {
		file, stdout, _ := strings.Cut(keys[id], "\x00")
		// The id is printf's argument: in its format, \0 before digits
		// would read them as octal.
		fmt.Fprintf(&cmd, "printf '\\0%%s\\0' %s; { %s; } | tr -d '\\000'; ", id, sentinelCmd(file, stdout))
	}
	out, err := c.run(ctx, cmd.String()+"true")
	parts := strings.Split(out.stdout, "\x00")
	if err == nil && len(parts) != 1+2*len(ids) {
		err = fmt.Errorf("read %d sentinels: %d parts in the answer, want %d", len(ids), len(parts), 1+2*len(ids))
	}
	for i, id := range ids {
		switch {
		case err != nil:
			res[id] = result[string]{err: commandError("read the sentinels", out, err)}
		case parts[1+2*i] != string(id):
			res[id] = result[string]{err: fmt.Errorf("read the sentinels: part %d is job %q, want %s", i, parts[1+2*i], id)}
		default:
			res[id] = result[string]{v: parts[2+2*i]}
		}
	}
	return res
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

// watched is every job a watch of this Client follows right now, for a
// Slurm query (key "").
func (c *Client) watched() map[JobID]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make(map[JobID]string, len(c.watching))
	for id := range c.watching {
		keys[id] = ""
	}
	return keys
}

// watchCount is how many jobs the Client's watches follow right now.
func (c *Client) watchCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.watching)
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
			delete(c.sentinelKeys, id)
		}
	}
}

// sharedController is Query for a watch: an answer from the controller
// (or accounting, for a job the controller forgot) no older than maxAge;
// a new round waits gather for others (with several jobs watched).
func (c *Client) sharedController(ctx context.Context, clk clock, id JobID, maxAge, gather time.Duration) (JobState, time.Time, error) {
	return c.ctrl.get(ctx, clk.Now(), id, "", maxAge, gather, c.watched, c.together, clk.Sleep, func(ctx context.Context, keys map[JobID]string) map[JobID]jobAnswer {
		return c.queryMany(ctx, sortedIDs(keys))
	})
}

// sharedSacct is sacct for a watch, shared the same way.
func (c *Client) sharedSacct(ctx context.Context, clk clock, id JobID, maxAge time.Duration) (JobState, time.Time, error) {
	return c.acct.get(ctx, clk.Now(), id, "", maxAge, c.Policy.fastPoll()/4, c.watched, c.together, clk.Sleep, func(ctx context.Context, keys map[JobID]string) map[JobID]jobAnswer {
		return c.sacctMany(ctx, sortedIDs(keys))
	})
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
	// The ids are digits and _ only (ValidJobID): no regexp or shell
	// meaning. The controller's exit status travels as a last line, as
	// grep's own would hide it; every job is one line with -o.
	pattern := "^(JobId=(" + joinIDs(ids, "|") + ") |" + rcMark + ")"
	cmd := "{ " + slurmEnv + "scontrol -a show job -o; echo " + rcMark + "$?; } | grep -E " + shellquote.Quote(pattern)
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
		mine := linesOf(lines, "JobId="+string(id)+" ")
		if mine == "" {
			forgotten = append(forgotten, id)
			continue
		}
		s, err := parseScontrol(id, mine)
		res[id] = jobAnswer{s, err}
	}
	if len(forgotten) > 0 {
		for id, a := range c.sacctMany(ctx, forgotten) {
			if errors.Is(a.err, ErrAccountingDisabled) {
				a.err = forgottenError(id, a.err)
			}
			res[id] = a
		}
	}
	return res
}

// joinIDs joins job ids with sep.
func joinIDs(ids []JobID, sep string) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	return strings.Join(s, sep)
}

// linesOf is the lines that start with prefix (one job's, in an answer
// about several), joined again.
func linesOf(lines []string, prefix string) string {
	var mine []string
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			mine = append(mine, l)
		}
	}
	return strings.Join(mine, "\n")
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
	out, err := c.sacctRun(ctx, joinIDs(ids, ","))
	if err != nil {
		for _, id := range ids {
			res[id] = jobAnswer{JobState{ID: id, Source: "sacct"}, err}
		}
		return res
	}
	lines := strings.Split(out, "\n")
	for _, id := range ids {
		s, err := parseSacct(id, linesOf(lines, string(id)+"|"))
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
		res[id] = Answer{a.v, a.err}
	}
	return res
}
