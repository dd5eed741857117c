package sbatch

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/transport"
)

// A round serves every request no older than its maxAge; a fresh request
// (maxAge 0) or one about a job the round did not ask about gets a round
// of its own, which asks about every job being watched.
func TestSharedQueryServesRecentRounds(t *testing.T) {
	var q sharedQuery[JobID, JobState]
	var asked [][]JobID
	ask := recordAsked(&asked, "RUNNING")
	live := []JobID{"1", "2", "3"}
	ids := func() []JobID { return live }
	ctx := context.Background()
	t0 := clockStart

	get := func(id JobID, at, maxAge time.Duration) time.Time {
		t.Helper()
		s, start, err := q.get(ctx, t0.Add(at), id, "", maxAge, 0, keysOf(ids), several, noSleep, byIDs(ask))
		if err != nil || s.ID != id || !s.Known {
			t.Fatalf("get %s: %+v %v", id, s, err)
		}
		return start
	}
	if start := get("1", 0, 0); !start.Equal(t0) || len(asked) != 1 || fmt.Sprint(asked[0]) != "[1 2 3]" {
		t.Fatalf("first round: start %v, asked %v", start, asked)
	}
	if start := get("2", 5*time.Second, 10*time.Second); !start.Equal(t0) || len(asked) != 1 {
		t.Fatalf("a round 5 s old should serve maxAge 10 s: start %v, asked %v", start, asked)
	}
	if get("3", 5*time.Second, 0); len(asked) != 2 {
		t.Fatalf("maxAge 0 must ask again: asked %v", asked)
	}
	if start := get("1", 20*time.Second, 10*time.Second); !start.Equal(t0.Add(20*time.Second)) || len(asked) != 3 {
		t.Fatalf("a round 15 s old must not serve maxAge 10 s: start %v, asked %v", start, asked)
	}
	live = append(live, "4")
	if get("4", 21*time.Second, time.Minute); len(asked) != 4 || fmt.Sprint(asked[3]) != "[1 2 3 4]" {
		t.Fatalf("a job no round asked about gets a round of its own, for all: asked %v", asked)
	}
}

// A request that comes while a fitting round is in flight waits for it
// instead of asking again.
func TestSharedQueryJoinsRoundInFlight(t *testing.T) {
	var q sharedQuery[JobID, JobState]
	release, entered := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	calls := 0
	ask := func(_ context.Context, ids []JobID) map[JobID]jobAnswer {
		mu.Lock()
		calls++
		mu.Unlock()
		close(entered)
		<-release
		res := map[JobID]jobAnswer{}
		for _, id := range ids {
			res[id] = jobAnswer{v: JobState{ID: id, Known: true, State: "PENDING"}}
		}
		return res
	}
	ids := func() []JobID { return []JobID{"1", "2"} }
	ctx := context.Background()
	first := make(chan error, 1)
	go func() {
		_, _, err := q.get(ctx, clockStart, "1", "", 0, 0, keysOf(ids), several, noSleep, byIDs(ask))
		first <- err
	}()
	<-entered
	second := make(chan JobState, 1)
	go func() {
		s, _, _ := q.get(ctx, clockStart, "2", "", 0, 0, keysOf(ids), several, noSleep, byIDs(ask))
		second <- s
	}()
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if s := <-second; s.State != "PENDING" {
		t.Fatalf("second request: %+v", s)
	}
	if calls != 1 {
		t.Fatalf("asked %d times, want 1", calls)
	}
}

func noSleep(context.Context, time.Duration) error { return nil }

func several(watched int) bool { return watched >= 2 }

// keysOf and byIDs adapt the tests' job lists to a Slurm query's keys.
func keysOf(ids func() []JobID) func() map[JobID]string {
	return func() map[JobID]string {
		keys := map[JobID]string{}
		for _, id := range ids() {
			keys[id] = ""
		}
		return keys
	}
}

func byIDs(ask func(context.Context, []JobID) map[JobID]jobAnswer) func(context.Context, map[JobID]string) map[JobID]jobAnswer {
	return func(ctx context.Context, keys map[JobID]string) map[JobID]jobAnswer { return ask(ctx, sortedIDs(keys)) }
}

// recordAsked is a shared query's ask that records which jobs each round
// asked about and answers state for each.
func recordAsked(asked *[][]JobID, state string) func(context.Context, []JobID) map[JobID]jobAnswer {
	return func(_ context.Context, ids []JobID) map[JobID]jobAnswer {
		*asked = append(*asked, ids)
		res := map[JobID]jobAnswer{}
		for _, id := range ids {
			res[id] = jobAnswer{v: JobState{ID: id, Known: true, State: state}}
		}
		return res
	}
}

// With several jobs watched, a fresh request waits a moment before it
// asks: a fresh request of another job that comes meanwhile, for a job
// the round did not know of yet, rides along.
func TestSharedQueryGathersFreshRequests(t *testing.T) {
	var q sharedQuery[JobID, JobState]
	var asked [][]JobID
	ask := recordAsked(&asked, "PENDING")
	live := []JobID{"1", "2"}
	ids := func() []JobID { return live }
	gathering, joined := make(chan struct{}), make(chan struct{})
	sleep := func(context.Context, time.Duration) error {
		close(gathering)
		<-joined
		return nil
	}
	ctx := context.Background()
	gather := 250 * time.Millisecond
	first := make(chan error, 1)
	go func() {
		_, _, err := q.get(ctx, clockStart, "1", "", 0, gather, keysOf(ids), several, sleep, byIDs(ask))
		first <- err
	}()
	<-gathering
	// Job 3 was submitted meanwhile: its first look comes within the
	// gather time.
	second := make(chan JobState, 1)
	go func() {
		s, _, _ := q.get(ctx, clockStart.Add(gather/2), "3", "", 0, gather, keysOf(ids), several, noSleep, byIDs(ask))
		second <- s
	}()
	// Wait until job 3 is in the round (it then waits for the round).
	for {
		q.mu.Lock()
		_, in := q.rounds[0].keys["3"]
		q.mu.Unlock()
		if in {
			break
		}
		runtime.Gosched()
	}
	close(joined)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if s := <-second; s.State != "PENDING" || s.ID != "3" {
		t.Fatalf("job 3: %+v", s)
	}
	if len(asked) != 1 || fmt.Sprint(asked[0]) != "[1 2 3]" {
		t.Fatalf("asked %v, want one round for 1 2 3", asked)
	}
}

// queryMany asks the controller once for all jobs, takes each job's own
// line (not another job's, not a line of a job whose id starts the
// same), and asks accounting, together, about the jobs the controller no
// longer lists.
func TestQueryManyOneControllerCall(t *testing.T) {
	end := t0.Add(time.Minute)
	f := &fakeT{answer: func(cmd string) answer {
		switch kind(cmd) {
		case "scontrol":
			if strings.Contains(cmd, "scontrol -a show job -o;") && strings.Contains(cmd, "grep -E") {
				return answer{stdout: running.scontrol("11") + job{state: "COMPLETED", start: t0, end: end, nodes: "node1"}.scontrol("12") + rcMark + "0\n"}
			}
		case "sacct":
			if strings.Contains(cmd, "-j 13 ") || strings.Contains(cmd, "-j '13' ") {
				return answer{stdout: job{state: "FAILED", exit: "1:0", start: t0, end: end, nodes: "node2"}.sacct("13")}
			}
		}
		t.Errorf("unexpected command %q", cmd)
		return answer{code: 127}
	}}
	c := &Client{T: f}
	res := c.queryMany(context.Background(), []JobID{"11", "12", "13"})
	want := map[JobID]string{"11": "RUNNING scontrol", "12": "COMPLETED scontrol", "13": "FAILED sacct"}
	for id, w := range want {
		a := res[id]
		if a.err != nil || fmt.Sprintf("%s %s", a.v.State, a.v.Source) != w || a.v.ID != id {
			t.Errorf("job %s: %+v %v, want %s", id, a.v, a.err, w)
		}
	}
	if n := f.count("scontrol"); n != 1 {
		t.Errorf("%d controller calls, want 1", n)
	}
	for _, cmd := range f.calls {
		if kind(cmd) == "scontrol" && !strings.Contains(cmd, "JobId=(11|12|13) ") {
			t.Errorf("the filter does not name exactly the jobs asked about: %q", cmd)
		}
	}
}

// A failed controller query is every asked job's error, and its message
// is Slurm's.
func TestQueryManyControllerFails(t *testing.T) {
	f := &fakeT{answer: func(cmd string) answer {
		return answer{stdout: rcMark + "1\n", stderr: "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"}
	}}
	c := &Client{T: f}
	for id, a := range c.queryMany(context.Background(), []JobID{"1", "2"}) {
		if a.err == nil || !strings.Contains(a.err.Error(), "Unable to contact slurm controller") {
			t.Errorf("job %s: %+v %v", id, a.v, a.err)
		}
	}
}

// Three watches on one Client end with their own jobs' states, and the
// controller is asked about the jobs together, and their sentinels are
// read together.
func TestWatchesShareControllerQueries(t *testing.T) {
	end := t0.Add(time.Minute)
	finals := map[string]job{
		"21": {state: "COMPLETED", start: t0, end: end, nodes: "node1"},
		"22": {state: "FAILED", exit: "1:0", start: t0, end: end, nodes: "node2"},
		"23": {state: "TIMEOUT", exit: "0:15", start: t0, end: end, nodes: "node3"},
	}
	var mu sync.Mutex
	ended := map[string]bool{} // a sentinel was read: the job is over
	together := false
	batched := 0 // sentinel reads of several jobs at once
	f := &fakeT{}
	c := &Client{T: f, Policy: fastPolicy}
	f.answer = func(cmd string) answer {
		mu.Lock()
		defer mu.Unlock()
		state := func(id string) job {
			if ended[id] {
				return finals[id]
			}
			return running
		}
		switch kind(cmd) {
		case "scontrol":
			if !strings.Contains(cmd, "grep -E") {
				id := cmd[strings.LastIndex(cmd, " ")+1:]
				return answer{stdout: state(strings.Trim(id, "'")).scontrol(strings.Trim(id, "'"))}
			}
			var out string
			for id := range finals {
				if strings.Contains(cmd, id) {
					out += state(id).scontrol(id)
				}
			}
			return answer{stdout: out + rcMark + "0\n"}
		case "sacct":
			return answer{code: 1, stderr: "sacct: error: Slurm accounting storage is disabled\n"}
		case "sentinel":
			// No job ends before all three are watched.
			if !together {
				together = len(c.watched()) == len(finals)
			}
			read := func(id string) string {
				if !together {
					return ""
				}
				ended[id] = true
				return fmt.Sprintf("0 %d\n", end.Unix())
			}
			if !strings.Contains(cmd, "tr -d") {
				for id := range finals {
					if strings.Contains(cmd, "/ws"+id+"/") {
						return answer{stdout: read(id)}
					}
				}
				break
			}
			// Several jobs' sentinels in one command: each part framed by
			// NULs, in the order of the command.
			batched++
			var out strings.Builder
			for _, id := range slices.Sorted(maps.Keys(finals)) {
				if strings.Contains(cmd, "/ws"+id+"/") {
					fmt.Fprintf(&out, "\x00%s\x00%s", id, read(id))
				}
			}
			return answer{stdout: out.String()}
		}
		t.Errorf("unexpected command %q", cmd)
		return answer{code: 127}
	}
	var wg sync.WaitGroup
	got := make(map[string]JobState)
	var gmu sync.Mutex
	for id := range finals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := c.Watch(testContext(t, 30*time.Second), JobID(id), "/ws"+id+"/job-finished", nil)
			if err != nil {
				t.Errorf("job %s: %v", id, err)
			}
			gmu.Lock()
			got[id] = s
			gmu.Unlock()
		}()
	}
	wg.Wait()
	for id, want := range finals {
		if got[id].State != want.state || got[id].ID != JobID(id) {
			t.Errorf("job %s ended %+v, want %s", id, got[id], want.state)
		}
	}
	if n := f.count("scontrol -a show job -o;"); n == 0 {
		t.Errorf("the controller was never asked about all jobs at once: %q", f.calls)
	}
	if batched == 0 {
		t.Errorf("the sentinels were never read together: %q", f.calls)
	}
}

// readSentinels frames each job's part with NULs; an answer that does not
// frame every job asked about is every job's error (read again at the
// next poll), never one job's part taken for another's.
func TestReadSentinelsFraming(t *testing.T) {
	keys := map[JobID]string{"101": "/ws1/job-finished\x00", "102": "/ws2/job-finished\x00/ws2/out.log"}
	for _, c := range []struct {
		name, stdout string
		want         map[JobID]string // nil: every job's error
	}{
		{"both", "\x00101\x000 1700000000\n\x00102\x00O:10 1700000000\n", map[JobID]string{"101": "0 1700000000\n", "102": "O:10 1700000000\n"}},
		{"empty parts", "\x00101\x00\x00102\x00", map[JobID]string{"101": "", "102": ""}},
		{"one missing", "\x00101\x000 1700000000\n", nil},
		{"swapped", "\x00102\x00\x00101\x00", nil},
	} {
		var cmd string
		c := c
		cl := &Client{T: &fakeT{answer: func(got string) answer { cmd = got; return answer{stdout: c.stdout} }}}
		res := cl.readSentinels(context.Background(), keys)
		for id := range keys {
			r := res[id]
			if c.want == nil {
				if r.err == nil {
					t.Errorf("%s: job %s: %q, want an error", c.name, id, r.v)
				}
				continue
			}
			if r.err != nil || r.v != c.want[id] {
				t.Errorf("%s: job %s: %q %v, want %q", c.name, id, r.v, r.err, c.want[id])
			}
		}
		if !strings.Contains(cmd, "stat -c '%s %Y' -- /ws2/out.log") || strings.Contains(cmd, "-- /ws1/out.log") {
			t.Errorf("%s: each job's own files: %q", c.name, cmd)
		}
	}
}

// The framed command as bash runs it: each job's own sentinel and output
// file, a NUL inside a sentinel dropped, a missing file an empty part.
func TestReadSentinelsInBash(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s1 := write("s1", "0 1700000000\n")
	s2 := write("s2", "1 17\x0000000001\n")
	out := write("out with space.log", "hello")
	keys := map[JobID]string{"1": s1 + "\x00", "2": s2 + "\x00" + out, "3": filepath.Join(dir, "missing") + "\x00"}
	res := (&Client{T: transport.Local{}}).readSentinels(context.Background(), keys)
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[JobID]string{"1": "0 1700000000\n", "2": fmt.Sprintf("O:5 %d\n1 1700000001\n", st.ModTime().Unix()), "3": ""}
	for id, w := range want {
		if r := res[id]; r.err != nil || r.v != w {
			t.Errorf("job %s: %q %v, want %q", id, r.v, r.err, w)
		}
	}
}
