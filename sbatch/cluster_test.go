package sbatch

// Integration tests against the real Slurm test cluster on this machine
// (scripts/testcluster). They run when DISAGG_TESTCLUSTER=1, and then a
// cluster that cannot be reached is a failure, not a skip.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/shellquote"
	"github.com/disagg-runner/disagg-runner/internal/testcluster"
	"github.com/disagg-runner/disagg-runner/internal/transport"
	"github.com/disagg-runner/disagg-runner/prefix"
)

// cluster returns the test cluster's settings, or skips the test when
// DISAGG_TESTCLUSTER is not 1.
func cluster(t *testing.T) map[string]string { return testcluster.Env(t) }

// workspace is a job workspace every node and user can read: the nodes
// are on this machine, and the RPC test reads as nobody.
func workspace(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "sbatch-it-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("workspace kept: %s", dir)
		}
	})
	return dir
}

// jobScript writes launch.sh the way the runner's prefix will: #SBATCH
// lines, then the EXIT trap that writes the sentinel, then body.
func jobScript(t *testing.T, env map[string]string, ws, extra, body string) {
	t.Helper()
	script := fmt.Sprintf(`#!/bin/bash
#SBATCH --partition=%s
#SBATCH --account=%s
#SBATCH --output=%s/job-output.log
#SBATCH --job-name=sbatch-it
%s
WS=%s
%s
%s
`, env["CLUSTER_PARTITION"], env["CLUSTER_ACCOUNT"], ws, extra, shellquote.Quote(ws), prefix.FinishedTrap(`"$WS/job-finished"`), body)
	if err := os.WriteFile(filepath.Join(ws, "launch.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// printLines is a job body printing 50 lines over about 10 seconds, then
// leaving results behind. Shorter jobs may end before accounting records
// their start (it lags the controller by up to about 5 s), and Watch
// would report PENDING then COMPLETED.
const printLines = `for i in $(seq 1 50); do echo "line $i on $(hostname) of $SLURM_JOB_NODELIST: $(printf '%0.s.' $(seq 1 $i))"; sleep 0.2; done
mkdir -p "$WS/test-output/perf"
echo "deep" > "$WS/test-output/perf/server.log"
echo '<testsuite tests="1" failures="0"/>' > "$WS/results.xml"`

// printLinesHeld is printLines, except that after line 30 the job waits
// until the file go-on appears in its workspace: the test decides when it
// goes on, and knows it still runs until then.
var printLinesHeld = strings.Replace(printLines, "; do echo", `; do [ "$i" = 31 ] && until [ -e "$WS/go-on" ]; do sleep 0.2; done; echo`, 1)

func logTo(t *testing.T) func(string, ...any) {
	return func(f string, a ...any) { t.Logf("%s "+f, append([]any{time.Now().Format("15:04:05.000")}, a...)...) }
}

// watchAndFollow follows the job log into out (nil: a buffer of its own)
// while watching the job, stopping the follow once the job ended, as the
// runner does.
func watchAndFollow(t *testing.T, c *Client, id JobID, ws string, out *syncBuffer) (JobState, []JobState, time.Time, string) {
	t.Helper()
	ctx := testContext(t, 5*time.Minute)
	if out == nil {
		out = &syncBuffer{}
	}
	stop := make(chan struct{})
	followed := make(chan error, 1)
	go func() {
		_, err := c.Follow(ctx, filepath.Join(ws, "job-output.log"), out, stop)
		followed <- err
	}()
	var changes []JobState
	final, err := c.Watch(ctx, id, filepath.Join(ws, "job-finished"), func(s JobState) {
		t.Logf("%s change: %+v", time.Now().Format("15:04:05.000"), s)
		changes = append(changes, s)
	})
	returned := time.Now()
	close(stop)
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	if err := <-followed; err != nil {
		t.Fatalf("follow: %v", err)
	}
	return final, changes, returned, out.String()
}

func TestClusterSubmitFollowWatchFetch(t *testing.T) {
	env := cluster(t)
	t.Parallel()
	ws := workspace(t)
	jobScript(t, env, ws, "#SBATCH --nodes=2", printLines+"\nexit 0")
	c := &Client{T: transport.Local{}, Logf: logTo(t)}
	ctx := testContext(t, 5*time.Minute)

	id, err := c.Submit(ctx, ws, "launch.sh", "job-id")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(ws, "job-id")); strings.TrimSpace(string(b)) != string(id) {
		t.Errorf("job id file holds %q, want %q", b, id)
	}
	if rec, err := c.Recorded(ctx, filepath.Join(ws, "job-id")); rec != id || err != nil {
		t.Errorf("Recorded: %q %v", rec, err)
	}

	final, changes, returned, streamed := watchAndFollow(t, c, id, ws, nil)
	if final.State != "COMPLETED" || final.ExitCode != 0 || final.Signal != 0 || final.NodeList == "" {
		t.Errorf("final %+v", final)
	}
	var sawRunning bool
	for _, s := range changes {
		if s.State == "RUNNING" && s.NodeList != "" {
			sawRunning = true
		}
	}
	if !sawRunning || changes[len(changes)-1].State != "COMPLETED" {
		t.Errorf("changes %v: want RUNNING with nodes, then COMPLETED", changes)
	}
	// How soon Watch notices the end is a performance figure (see
	// bench/all); the limit only catches an end that the sentinel
	// and sacct both missed, left to the controller's safety net (every
	// 2 minutes while sacct agrees).
	lag := returned.Sub(final.End)
	t.Logf("Slurm StartTime %s", final.Start.Local().Format("15:04:05"))
	t.Logf("Slurm EndTime %s, Watch returned %s: %.2f s later (EndTime has 1 s resolution)",
		final.End.Local().Format("15:04:05"), returned.Format("15:04:05.000"), lag.Seconds())
	if lag > time.Minute {
		t.Errorf("Watch returned %s after the job ended: was it only the controller's safety net?", lag)
	}

	file, _ := os.ReadFile(filepath.Join(ws, "job-output.log"))
	if streamed != string(file) {
		t.Errorf("followed %d bytes, the file has %d; equal=%v", len(streamed), len(file), streamed == string(file))
	}
	if n := strings.Count(streamed, "\n"); n != 50 {
		t.Errorf("%d lines streamed", n)
	}

	local := filepath.Join(t.TempDir(), "results")
	fetched, missing, err := c.Fetch(ctx, ws, []string{"results*.xml", "test-output", "unfinished_test.txt", "job-output.log"}, nil, local)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fetched %q, missing %q", fetched, missing)
	if strings.Join(fetched, ",") != "job-output.log,results.xml,test-output" || strings.Join(missing, ",") != "unfinished_test.txt" {
		t.Errorf("fetched %q missing %q", fetched, missing)
	}
	if b, _ := os.ReadFile(filepath.Join(local, "test-output", "perf", "server.log")); string(b) != "deep\n" {
		t.Errorf("folder content %q", b)
	}
}

func TestClusterFailedExitCode(t *testing.T) {
	env := cluster(t)
	t.Parallel()
	ws := workspace(t)
	jobScript(t, env, ws, "#SBATCH --nodes=1", "echo failing; exit 3")
	c := &Client{T: transport.Local{}, Logf: logTo(t)}
	id, err := c.Submit(testContext(t, time.Minute), ws, "launch.sh", "job-id")
	if err != nil {
		t.Fatal(err)
	}
	final, _, returned, _ := watchAndFollow(t, c, id, ws, nil)
	if final.State != "FAILED" || final.ExitCode != 3 || final.Reason != "NonZeroExitCode" {
		t.Errorf("final %+v", final)
	}
	t.Logf("EndTime %s, returned %.2f s later", final.End.Local().Format("15:04:05"), returned.Sub(final.End).Seconds())
	if b, _ := os.ReadFile(filepath.Join(ws, "job-finished")); !strings.HasPrefix(string(b), "3 ") {
		t.Errorf("sentinel %q", b)
	}
}

func TestClusterCancel(t *testing.T) {
	env := cluster(t)
	t.Parallel()
	ws := workspace(t)
	jobScript(t, env, ws, "#SBATCH --nodes=1", `touch "$WS/started"; echo sleeping; sleep 300`)
	c := &Client{T: transport.Local{}, Logf: logTo(t), Policy: Policy{FastPoll: 200 * time.Millisecond}}
	ctx := testContext(t, 2*time.Minute)
	id, err := c.Submit(ctx, ws, "launch.sh", "job-id")
	if err != nil {
		t.Fatal(err)
	}
	// The script itself runs, not only the allocation the controller calls
	// RUNNING: a kill that races the batch script's launch can leave the
	// job COMPLETING until KillWait (30 s), which Cancel without
	// accounting reports as such (TestClusterCancelJobIgnoringSIGTERM).
	waitFor(t, ctx, "the job script to run", func() bool {
		_, err := os.Stat(filepath.Join(ws, "started"))
		return err == nil
	})
	start := time.Now()
	final, err := c.Cancel(ctx, id)
	if err != nil || final.State != "CANCELLED" || !final.Terminal() {
		t.Fatalf("%+v %v\nSlurm's logs:\n%s", final, err, testcluster.SlurmLog(env, string(id)))
	}
	t.Logf("cancel confirmed in %s: %+v", time.Since(start).Round(time.Millisecond), final)

	// Cancelling again is silent and still confirms.
	if again, err := c.Cancel(ctx, id); err != nil || again.State != "CANCELLED" {
		t.Errorf("second cancel: %+v %v", again, err)
	}
}

// TestClusterCancelJobIgnoringSIGTERM: a job that ignores SIGTERM stays
// COMPLETING until KillWait (30 s on the test cluster) ends it with
// SIGKILL, and so does a job whose processes a racing kill missed. Cancel
// does not wait for that: with accounting it returns the end accounting
// recorded, without accounting the controller's COMPLETING once its
// patience is over (or the final state, should KillWait end first).
func TestClusterCancelJobIgnoringSIGTERM(t *testing.T) {
	env := cluster(t)
	t.Parallel()
	ws := workspace(t)
	jobScript(t, env, ws, "#SBATCH --nodes=1", `trap '' TERM; touch "$WS/ignoring"; while :; do sleep 1; done`)
	c := &Client{T: transport.Local{}, Logf: logTo(t), Policy: Policy{FastPoll: 200 * time.Millisecond}}
	ctx := testContext(t, 2*time.Minute)
	id, err := c.Submit(ctx, ws, "launch.sh", "job-id")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the job to ignore SIGTERM", func() bool {
		_, err := os.Stat(filepath.Join(ws, "ignoring"))
		return err == nil
	})
	final, err := c.Cancel(ctx, id)
	if err != nil {
		t.Fatalf("%+v %v", final, err)
	}
	t.Logf("cancel returned %+v", final)
	if env["TESTCLUSTER_ACCOUNTING"] == "0" {
		if !(final.State == "COMPLETING" && final.Completing) && !(final.State == "CANCELLED" && !final.Completing) {
			t.Fatalf("got %s (completing %v), want COMPLETING with Completing set, or CANCELLED", final.State, final.Completing)
		}
		return
	}
	if final.State != "CANCELLED" || final.Source != "sacct" || !final.Completing || final.NodeList == "" {
		t.Fatalf("got %s from %s (completing %v on %q), want CANCELLED from sacct, completing on the job's node", final.State, final.Source, final.Completing, final.NodeList)
	}
	// Completing was true to the controller's face: it still says so.
	if s, err := c.scontrol(ctx, id); err != nil || s.State != "COMPLETING" {
		t.Errorf("the controller now says %+v %v; KillWait (30 s) cannot have passed yet", s, err)
	}
}

// TestClusterHiddenPartition probes a Hidden=YES partition, then submits
// two jobs to it and watches them together, as a run of a test list does
// (one listing of all jobs answers both watches), asking as user nobody:
// for anyone but root, scontrol leaves such a partition and its jobs out
// of listings unless asked with -a. The check would call the partition
// missing, and the watch would take the jobs for forgotten (an error
// without accounting; accounting's answer instead of the controller's
// with it).
func TestClusterHiddenPartition(t *testing.T) {
	env := cluster(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root for runuser: root itself sees hidden partitions")
	}
	hidden := env["TESTCLUSTER_HIDDEN_PARTITION"]
	if hidden == "" {
		t.Fatal("the test cluster's env names no hidden partition: restart it with scripts/testcluster up")
	}
	t.Parallel()
	c := &Client{T: transport.Local{}, Logf: logTo(t)}
	asker := &Client{T: asNobody{conf: env["SLURM_CONF"]}, Logf: logTo(t)}
	ctx := testContext(t, 3*time.Minute)
	facts, err := asker.Probe(ctx, ProbeRequest{Partition: hidden})
	if err != nil || !facts.Partition.Found || facts.Partition.State != "UP" || len(facts.GPUs) == 0 {
		t.Errorf("probe of the hidden partition: %+v %v", facts, err)
	}

	henv := maps.Clone(env)
	henv["CLUSTER_PARTITION"] = hidden
	var ids []JobID
	var files []string
	for range 2 {
		ws := workspace(t)
		jobScript(t, henv, ws, "#SBATCH --nodes=1", "echo in the hidden partition; sleep 2")
		id, err := c.Submit(ctx, ws, "launch.sh", "job-id")
		if err != nil {
			t.Fatal(err)
		}
		ids, files = append(ids, id), append(files, filepath.Join(ws, "job-finished"))
	}
	finals := make([]JobState, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() { finals[i], errs[i] = asker.Watch(ctx, ids[i], files[i], nil) })
	}
	wg.Wait()
	for i, id := range ids {
		if f := finals[i]; errs[i] != nil || f.State != "COMPLETED" || f.Source != "scontrol" {
			t.Errorf("job %s: %+v %v, want COMPLETED from scontrol", id, f, errs[i])
		}
	}
}

func TestClusterBadPartition(t *testing.T) {
	env := cluster(t)
	t.Parallel()
	ws := workspace(t)
	env2 := map[string]string{"CLUSTER_PARTITION": "no-such-partition", "CLUSTER_ACCOUNT": env["CLUSTER_ACCOUNT"]}
	jobScript(t, env2, ws, "", "exit 0")
	c := &Client{T: transport.Local{}, Logf: logTo(t)}
	id, err := c.Submit(testContext(t, time.Minute), ws, "launch.sh", "job-id")
	if id != "" || !errors.Is(err, ErrSubmitRefused) {
		t.Fatalf("id %q err %v", id, err)
	}
	if err.Error() != "sbatch: error: Batch job submission failed: Invalid partition name specified" {
		t.Errorf("message %q", err)
	}
	t.Logf("refused: %v", err)
	if _, err := os.Stat(filepath.Join(ws, "job-id")); err == nil {
		t.Error("a job id was recorded")
	}
}

func TestClusterQueryPurgedJob(t *testing.T) {
	env := cluster(t)
	t.Parallel()
	c := &Client{T: transport.Local{}, Logf: logTo(t)}
	ctx := testContext(t, 3*time.Minute)
	minAge := 300
	if out, err := exec.Command("scontrol", "show", "config").Output(); err == nil {
		if m := regexp.MustCompile(`MinJobAge\s*=\s*(\d+)`).FindSubmatch(out); m != nil {
			minAge, _ = strconv.Atoi(string(m[1]))
		}
	}
	var id JobID
	if minAge <= 60 {
		// A cluster started with a short MinJobAge: watch a job vanish
		// from the controller.
		ws := workspace(t)
		jobScript(t, env, ws, "", "exit 4")
		var err error
		if id, err = c.Submit(ctx, ws, "launch.sh", "job-id"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, "the job to be purged", func() bool {
			_, err := c.scontrol(ctx, id)
			return err == errPurged
		})
	} else {
		// Default MinJobAge: take a job from accounting's history that
		// ended long enough ago. Only an ended one: a job cancelled while
		// Slurm requeued it keeps accounting's REQUEUED record.
		out, _ := exec.Command("sacct", "-X", "-P", "-n", "-a", "-S", "now-7days", "--format=JobID,End,State").Output()
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Split(l, "|")
			if len(f) == 3 && !strings.Contains(f[0], "_") && terminalStates[strings.Fields(f[2] + " ")[0]] {
				if end, err := time.ParseInLocation(timeLayout, f[1], time.Local); err == nil && time.Since(end) > time.Duration(minAge+60)*time.Second {
					id = JobID(f[0])
				}
			}
		}
		if id == "" && env["TESTCLUSTER_ACCOUNTING"] != "0" {
			t.Skipf("no job older than MinJobAge (%d s) in accounting yet", minAge)
		}
	}
	if env["TESTCLUSTER_ACCOUNTING"] == "0" {
		if id == "" {
			id = "1"
		}
		_, err := c.Query(ctx, id)
		t.Logf("purged job %s without accounting: %v", id, err)
		if err == nil || !strings.Contains(err.Error(), "accounting storage is disabled") {
			t.Errorf("got %v", err)
		}
		return
	}
	s, err := c.Query(ctx, id)
	t.Logf("purged job %s: %+v", id, s)
	if err != nil || s.Source != "sacct" || !s.Terminal() {
		t.Errorf("%+v %v", s, err)
	}
}

// TestClusterRequeue requeues a running job: Watch must report it pending
// again with Restarts=1 and not take the first run's sentinel for the end;
// Follow must notice the truncated log. Slurm holds a requeued job back
// for about two minutes (BeginTime), so this test takes that long.
func TestClusterRequeue(t *testing.T) {
	env := cluster(t)
	t.Parallel()
	ws := workspace(t)
	jobScript(t, env, ws, "#SBATCH --nodes=1\n#SBATCH --requeue", `echo "run $SLURM_RESTART_COUNT starts"
if [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then echo "first run, waiting to be requeued"; sleep 300; fi
echo "second run done"`)
	c := &Client{T: transport.Local{}, Logf: logTo(t)}
	ctx := testContext(t, 6*time.Minute)
	id, err := c.Submit(ctx, ws, "launch.sh", "job-id")
	if err != nil {
		t.Fatal(err)
	}
	// Requeued once Follow has streamed the first run's output: only then
	// is there something for the truncation to cut.
	var out syncBuffer
	go func() {
		waitFor(t, ctx, "the first run's output to be followed", func() bool {
			return strings.Contains(out.String(), "waiting to be requeued")
		})
		if msg, err := exec.Command("scontrol", "requeue", string(id)).CombinedOutput(); err != nil {
			t.Errorf("scontrol requeue: %v %s", err, msg)
		}
		t.Logf("%s requeued job %s", time.Now().Format("15:04:05.000"), id)
	}()
	final, changes, returned, streamed := watchAndFollow(t, c, id, ws, &out)
	if final.State != "COMPLETED" || final.Restarts != 1 {
		t.Errorf("final %+v", final)
	}
	var sawRequeue bool
	for _, s := range changes {
		if s.State == "PENDING" && s.Restarts == 1 {
			sawRequeue = true
		}
	}
	if !sawRequeue {
		t.Errorf("no PENDING with Restarts=1 among %v", changes)
	}
	t.Logf("EndTime %s, returned %.2f s later", final.End.Local().Format("15:04:05"), returned.Sub(final.End).Seconds())
	file, _ := os.ReadFile(filepath.Join(ws, "job-output.log"))
	marker := truncatedMarker(filepath.Join(ws, "job-output.log"))
	before, after, ok := strings.Cut(streamed, marker)
	if !ok || after != string(file) || !strings.Contains(before, "first run") {
		t.Errorf("streamed %q\nfile %q", streamed, file)
	}
}

// TestClusterRPCRate watches a job of about 60 s and counts what it cost
// slurmctld with sdiag. Every command of the watch runs as user nobody, so
// that sdiag's per-user count is this watch's alone, whatever else uses
// the cluster, and without `sdiag --reset`, which would spoil anybody
// else's count.
func TestClusterRPCRate(t *testing.T) {
	env := cluster(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root for sdiag and runuser")
	}
	t.Parallel()
	ws := workspace(t)
	jobScript(t, env, ws, "", "echo start; sleep 60; echo end")
	c := &Client{T: transport.Local{}, Logf: logTo(t)}
	ctx := testContext(t, 4*time.Minute)
	id, err := c.Submit(ctx, ws, "launch.sh", "job-id")
	if err != nil {
		t.Fatal(err)
	}
	before := sdiagCounts(t)
	watcher := &Client{T: asNobody{conf: env["SLURM_CONF"]}, Logf: logTo(t)}
	start := time.Now()
	final, err := watcher.Watch(ctx, id, filepath.Join(ws, "job-finished"), func(s JobState) { t.Logf("change: %+v", s) })
	took := time.Since(start)
	after := sdiagCounts(t)
	if err != nil || final.State != "COMPLETED" {
		t.Fatalf("%+v %v", final, err)
	}
	rpcs := after["nobody"] - before["nobody"]
	perMinute := float64(rpcs) / took.Minutes()
	t.Logf("watch of %s: %d slurmctld RPCs (%.1f per minute); all users' REQUEST_JOB_INFO_SINGLE %+d, REQUEST_FED_INFO %+d, REQUEST_JOB_INFO %+d; returned %.2f s after EndTime",
		took.Round(100*time.Millisecond), rpcs, perMinute,
		after["REQUEST_JOB_INFO_SINGLE"]-before["REQUEST_JOB_INFO_SINGLE"], after["REQUEST_FED_INFO"]-before["REQUEST_FED_INFO"],
		after["REQUEST_JOB_INFO"]-before["REQUEST_JOB_INFO"], time.Since(final.End).Seconds()-time.Since(start.Add(took)).Seconds())
	if took < 55*time.Second {
		t.Errorf("the watch took only %s", took)
	}
	if rpcs == 0 {
		t.Error("no RPCs counted: is the watch really running as nobody?")
	}
	// Without accounting: the first look, the start and the end (2 each),
	// and the safety net every noAccountingStretch*ControllerEvery while
	// the job runs. With accounting: fewer still.
	if perMinute > 6 {
		t.Errorf("%.1f RPCs per minute, want at most 6", perMinute)
	}
}

// asNobody runs commands as user nobody on this machine.
type asNobody struct {
	transport.Local
	conf string
}

func (a asNobody) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	return a.Local.Run(ctx, "cd / && exec runuser -u nobody -- env SLURM_CONF="+shellquote.Quote(a.conf)+" bash -c "+shellquote.Quote(cmd), stdin, stdout, stderr)
}

// sdiagCounts reads sdiag's RPC counts, by message type and by user.
func sdiagCounts(t *testing.T) map[string]int {
	t.Helper()
	out, err := exec.Command("sdiag").Output()
	if err != nil {
		t.Fatalf("sdiag: %v", err)
	}
	counts := map[string]int{}
	re := regexp.MustCompile(`^\s+(\S+)\s+\(\s*\d+\)\s+count:(\d+)`)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			n, _ := strconv.Atoi(m[2])
			counts[m[1]] = n
		}
	}
	return counts
}

func waitFor(t *testing.T, ctx context.Context, what string, ok func() bool) {
	for !ok() {
		if sleep(ctx, 200*time.Millisecond) != nil {
			t.Errorf("timed out waiting for %s", what)
			return
		}
	}
}

// TestClusterOverSSH submits, watches and follows through the SSH
// transport, via a TCP relay that the test cuts twice while the log
// streams: the follow must come out byte-identical to the file.
func TestClusterOverSSH(t *testing.T) {
	env := cluster(t)
	t.Parallel()
	port, _ := strconv.Atoi(env["CLUSTER_PORT"])
	relay := newRelay(t, net.JoinHostPort(env["CLUSTER_HOST"], env["CLUSTER_PORT"]))
	// The login node's key, recorded for the relay's address.
	kh, err := os.ReadFile(env["CLUSTER_KNOWN_HOSTS"])
	if err != nil {
		t.Fatal(err)
	}
	khRelay := filepath.Join(t.TempDir(), "known_hosts")
	from := fmt.Sprintf("[%s]:%d", env["CLUSTER_HOST"], port)
	to := fmt.Sprintf("[127.0.0.1]:%d", relay.port)
	os.WriteFile(khRelay, []byte(strings.ReplaceAll(string(kh), from, to)), 0o600)

	ctx := testContext(t, 5*time.Minute)
	tr, err := transport.DialSSH(ctx, transport.SSHConfig{
		Host: "127.0.0.1", Port: relay.port, User: env["CLUSTER_USER"],
		KeyFile: env["CLUSTER_SSH_KEY"], KnownHostsFile: khRelay, Logf: logTo(t),
	})
	if err != nil {
		t.Fatalf("ssh: %v", err)
	}
	defer tr.Close()

	ws := workspace(t)
	goOn := filepath.Join(ws, "go-on")
	t.Cleanup(func() { os.WriteFile(goOn, nil, 0o644) })
	jobScript(t, env, ws, "#SBATCH --nodes=2", printLinesHeld+"\nexit 0")
	c := &Client{T: tr, Logf: logTo(t)}
	id, err := c.Submit(ctx, ws, "launch.sh", "job-id")
	if err != nil {
		t.Fatal(err)
	}
	// Cut while the log streams: once Follow has streamed line 10, and
	// again once it has streamed line 30, where the job waits for the
	// test. Lines 11-30 and 31-50 can then only come over a new connection.
	var out syncBuffer
	go func() {
		for _, after := range []string{"line 10 ", "line 30 "} {
			waitFor(t, ctx, after, func() bool { return strings.Contains(out.String(), after) })
			t.Logf("%s cutting the connection", time.Now().Format("15:04:05.000"))
			relay.dropAll()
		}
		os.WriteFile(goOn, nil, 0o644)
	}()
	final, _, returned, streamed := watchAndFollow(t, c, id, ws, &out)
	if final.State != "COMPLETED" || final.ExitCode != 0 {
		t.Errorf("final %+v", final)
	}
	t.Logf("EndTime %s, returned %.2f s later; relay saw %d connections", final.End.Local().Format("15:04:05"), returned.Sub(final.End).Seconds(), relay.accepted())
	file, _ := os.ReadFile(filepath.Join(ws, "job-output.log"))
	if streamed != string(file) {
		t.Errorf("followed %d bytes, the file has %d; equal=%v", len(streamed), len(file), streamed == string(file))
	}
	if relay.accepted() < 3 {
		t.Errorf("%d connections: the drops did not happen", relay.accepted())
	}
}

// relay forwards TCP connections to target and can cut them all.
type relay struct {
	ln     net.Listener
	port   int
	target string
	mu     sync.Mutex
	conns  []net.Conn
	n      int
}

func newRelay(t *testing.T, target string) *relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, port: ln.Addr().(*net.TCPAddr).Port, target: target}
	t.Cleanup(func() { ln.Close(); r.dropAll() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, c, u)
			r.n++
			r.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return r
}

func (r *relay) dropAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
}

func (r *relay) accepted() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}
