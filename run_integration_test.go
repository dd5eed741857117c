package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/launch"
	"github.com/disagg-runner/disagg-runner/internal/shellquote"
	"github.com/disagg-runner/disagg-runner/internal/testcluster"
)

// These tests run the real binary against the real test cluster
// (scripts/testcluster) through its real OpenSSH login node. They run when
// DISAGG_TESTCLUSTER=1 (scripts/test sets it) and then fail, not skip, if
// the cluster is not there.

func clusterEnv(t *testing.T) map[string]string { return testcluster.Env(t) }

// job is one prepared run of the stand-in checkout.
type job struct {
	t         *testing.T
	env       map[string]string
	checkout  string
	workspace string
	workdir   string
	runID     string
}

type jobResult struct {
	code           int
	stdout, stderr string
	summary        map[string]any
}

var runCounter int

// newJob copies a stand-in checkout (so that its standin.env is the
// test's own) and prepares the environment of a run over SSH.
func newJob(t *testing.T, profile, config string, knobs map[string]string) *job {
	t.Helper()
	cenv := clusterEnv(t)
	root := t.TempDir()
	checkout := filepath.Join(root, "trtllm")
	src := filepath.Join("testdata", "trtllm-"+profile)
	if out, err := exec.Command("cp", "-a", src, checkout).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	var knobLines strings.Builder
	for k, v := range knobs {
		fmt.Fprintf(&knobLines, "%s=%s\n", k, v)
	}
	if err := os.WriteFile(filepath.Join(checkout, "standin.env"), []byte(knobLines.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"ws", "cluster", "models"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	runCounter++
	j := &job{t: t, checkout: checkout, workspace: filepath.Join(root, "ws"), workdir: filepath.Join(root, "cluster"),
		runID: fmt.Sprintf("it-%d-%d-%s", os.Getpid(), runCounter, config)}
	j.env = map[string]string{
		"CLUSTER_HOST": cenv["CLUSTER_HOST"], "CLUSTER_PORT": cenv["CLUSTER_PORT"], "CLUSTER_USER": cenv["CLUSTER_USER"],
		"CLUSTER_SSH_KEY": cenv["CLUSTER_SSH_KEY"], "CLUSTER_KNOWN_HOSTS": cenv["CLUSTER_KNOWN_HOSTS"],
		"CLUSTER_PARTITION": cenv["CLUSTER_PARTITION"], "CLUSTER_ACCOUNT": cenv["CLUSTER_ACCOUNT"],
		"SLURM_CONF":               cenv["SLURM_CONF"],
		"DOCKER_IMAGE":             "nvcr.io/nvidia/tensorrt-llm/release:test",
		"CLUSTER_LLM_DATA":         filepath.Join(root, "models"),
		"TRTLLM_DIR":               checkout,
		"CONFIG_NAME":              config,
		"WORKSPACE":                j.workspace,
		"CLUSTER_WORKDIR":          j.workdir,
		"DISAGG_RUN_ID":            j.runID,
		"CLUSTER_RECONNECT_BUDGET": "20s",
	}
	// DISAGG_TEST_DEBUG=1 go test ... shows every Slurm and SSH step of
	// the runs in the test's log.
	if v := os.Getenv("DISAGG_TEST_DEBUG"); v != "" {
		j.env["DISAGG_DEBUG"] = v
	}
	// A test that failed half-way can leave its jobs running (held by the
	// benchmark): they would hold the cluster's nodes and make the tests
	// after it wait for them. Registered first, this runs last.
	t.Cleanup(func() {
		var ids []string
		for _, line := range strings.Split(j.slurm("squeue", "-h", "-o", "%i %j"), "\n") {
			if id, name, ok := strings.Cut(line, " "); ok && strings.Contains(name, j.runID) {
				ids = append(ids, id)
			}
		}
		if len(ids) > 0 {
			j.slurm(append([]string{"scancel"}, ids...)...)
			t.Logf("cancelled the job(s) the test left in Slurm: %s", strings.Join(ids, " "))
			// scancel only asks: until the job's steps are gone, they
			// still write into the test's folder, and its removal fails
			// ("directory not empty").
			j.waitGone(ids, 2*time.Minute)
		}
		// A kill racing a step's launch can miss stand-in processes, and
		// proctrack/linuxproc loses them once they are orphaned: they
		// would wait forever for a hold file in the test's removed folder.
		// Their command lines name the test's own checkout.
		exec.Command("pkill", "-KILL", "-f", regexp.QuoteMeta(checkout+"/standin/")).Run()
	})
	return j
}

// hold keeps the job's benchmark from finishing, after its log lines and
// sleep, until release is called (STANDIN_HOLD_FILE): the test knows the
// job still runs until it has done what it must meanwhile. The test's end
// releases it too.
func (j *job) hold() (release func()) {
	j.t.Helper()
	file := filepath.Join(j.workdir, "release-"+j.runID)
	f, err := os.OpenFile(filepath.Join(j.checkout, "standin.env"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		j.t.Fatal(err)
	}
	fmt.Fprintf(f, "STANDIN_HOLD_FILE=%s\n", shellquote.Quote(file))
	if err := f.Close(); err != nil {
		j.t.Fatal(err)
	}
	release = func() { os.WriteFile(file, nil, 0o644) }
	j.t.Cleanup(release)
	return release
}

// local switches the job to the local transport (this machine is the
// login node).
func (j *job) local() *job {
	delete(j.env, "CLUSTER_HOST")
	return j
}

func (j *job) jobWorkspace() string { return filepath.Join(j.workdir, j.runID) }
func (j *job) resultsDir() string {
	return filepath.Join(j.workspace, "disagg-runner", j.runID, "results")
}

func (j *job) command(args ...string) *exec.Cmd {
	cmd := exec.Command(binary, append([]string{"run"}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range j.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

func (j *job) run(args ...string) jobResult {
	j.t.Helper()
	cmd := j.command(args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return j.result(err, stdout.String(), stderr.String())
}

func (j *job) result(err error, stdout, stderr string) jobResult {
	r := jobResult{stdout: stdout, stderr: stderr}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		j.t.Fatalf("running disagg-runner: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(j.resultsDir(), "summary.json")); err == nil {
		json.Unmarshal(b, &r.summary)
	}
	tail := ""
	if r.code != 0 && stdout != "" {
		// For a single test stdout is the job log: its end says why a
		// stand-in job failed when the cluster's files are gone.
		tail = "\n--- the end of stdout (the job log):\n" + lastLines(stdout, 40)
	}
	j.t.Logf("exit %d\n--- stderr:\n%s%s", r.code, stderr, tail)
	return r
}

// started is a run in the background.
type started struct {
	j              *job
	cmd            *exec.Cmd
	stdout, stderr outputBuffer
}

// outputBuffer collects a running process's output and lets the test wait
// for a given line in it: the test acts when the run has got that far,
// not after a guess at how long that takes.
type outputBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed (and replaced) by every write
}

func (o *outputBuffer) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.changed != nil {
		close(o.changed)
		o.changed = nil
	}
	return o.b.Write(p)
}

func (o *outputBuffer) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// waitFor waits until the output contains s, failing the test after
// patience (which only turns a hang into a failure).
func (o *outputBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	give := time.After(patience)
	for {
		o.mu.Lock()
		if strings.Contains(o.b.String(), s) {
			o.mu.Unlock()
			return
		}
		if o.changed == nil {
			o.changed = make(chan struct{})
		}
		changed := o.changed
		o.mu.Unlock()
		select {
		case <-changed:
		case <-give:
			t.Fatalf("after %s, the run's output still has no %q", patience, s)
		}
	}
}

// patience bounds the waits for the cluster: it only turns a hang into a
// failure, and the cluster shares this machine with whatever else runs
// on it.
const patience = 3 * time.Minute

func (j *job) start(args ...string) *started {
	j.t.Helper()
	return j.startCmd(j.command(args...))
}

// startCmd starts a command made by j.command (and then adjusted).
func (j *job) startCmd(cmd *exec.Cmd) *started {
	j.t.Helper()
	s := &started{j: j, cmd: cmd}
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	if err := s.cmd.Start(); err != nil {
		j.t.Fatal(err)
	}
	return s
}

func (s *started) wait() jobResult {
	s.j.t.Helper()
	return s.j.result(s.cmd.Wait(), s.stdout.String(), s.stderr.String())
}

// running waits until the run has submitted its job and the job runs.
func (j *job) running() string {
	j.t.Helper()
	id := j.jobID(patience)
	j.waitState(id, "RUNNING", patience)
	return id
}

// runnerSawRunning waits until the runner itself has reported the job
// running: it is then in stage 6, following the job.
func (s *started) runnerSawRunning() {
	s.j.t.Helper()
	s.stderr.waitFor(s.j.t, "job RUNNING")
}

// waitWithin waits for the run to end, failing the test (and killing the
// run) when it has not after d.
func (s *started) waitWithin(d time.Duration) jobResult {
	s.j.t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		return s.j.result(err, s.stdout.String(), s.stderr.String())
	case <-time.After(d):
		s.cmd.Process.Kill()
		<-done
		s.j.t.Fatalf("the run had not ended after %s\n--- stderr:\n%s", d, s.stderr.String())
		return jobResult{}
	}
}

// prependPath puts dir first on the run's PATH: stand-ins for Slurm's
// commands there are what the local transport runs.
func prependPath(cmd *exec.Cmd, dir string) {
	for i, kv := range cmd.Env {
		if strings.HasPrefix(kv, "PATH=") {
			cmd.Env[i] = "PATH=" + dir + ":" + strings.TrimPrefix(kv, "PATH=")
		}
	}
}

// jobID waits for the run to record its job id.
func (j *job) jobID(timeout time.Duration) string {
	j.t.Helper()
	p := filepath.Join(j.workspace, "disagg-runner", j.runID, "job_id")
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(p); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return string(bytes.TrimSpace(b))
		}
		time.Sleep(200 * time.Millisecond)
	}
	j.t.Fatalf("no job id recorded after %s", timeout)
	return ""
}

// slurm runs a Slurm command on this machine (the login node).
func (j *job) slurm(args ...string) string {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "SLURM_CONF="+j.env["SLURM_CONF"])
	out, _ := cmd.CombinedOutput()
	return strings.TrimSpace(string(out))
}

// notCancelled says why Slurm does not show job id as cancelled, or "".
// The controller's JobState says COMPLETING until Slurm has stopped every
// process of the job, which takes until KillWait (30 s) when a kill racing
// a step's launch missed one; accounting has recorded CANCELLED by then.
func (j *job) notCancelled(id string) string {
	ctl := j.slurm("scontrol", "show", "job", "-o", id)
	if strings.Contains(ctl, "JobState=CANCELLED ") {
		return ""
	}
	acct := j.slurm("sacct", "-X", "-n", "-P", "-o", "State", "-j", id)
	if strings.HasPrefix(acct, "CANCELLED") {
		return ""
	}
	return fmt.Sprintf("job %s not CANCELLED: accounting says %q, the controller: %s\nSlurm's logs:\n%s", id, acct, ctl, testcluster.SlurmLog(j.env, id))
}

func (j *job) waitState(id, want string, timeout time.Duration) {
	j.t.Helper()
	deadline := time.Now().Add(timeout)
	var out string
	for time.Now().Before(deadline) {
		out = j.slurm("scontrol", "show", "job", "-o", id)
		if strings.Contains(out, "JobState="+want+" ") {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	j.t.Fatalf("job %s not %s after %s; the controller's last word:\n%s\nits steps still running:\n%s\nSlurm's logs:\n%s",
		id, want, timeout, out, oldSteps(id), testcluster.SlurmLog(j.env, id))
}

var endedStates = map[string]bool{"COMPLETED": true, "CANCELLED": true, "FAILED": true, "TIMEOUT": true,
	"NODE_FAIL": true, "PREEMPTED": true, "BOOT_FAIL": true, "DEADLINE": true, "OUT_OF_MEMORY": true}

// waitGone waits, within limit, until Slurm no longer lists the jobs
// (COMPLETING included) and none of their steps runs on any node.
func (j *job) waitGone(ids []string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for {
		// squeue -j lists an ended job too, until MinJobAge.
		var left string
		for _, line := range strings.Split(j.slurm("squeue", "-h", "-o", "%i %T", "-j", strings.Join(ids, ",")), "\n") {
			if _, state, ok := strings.Cut(line, " "); ok && !endedStates[state] {
				left += line + "\n"
			}
		}
		for _, id := range ids {
			if steps := oldSteps(id); steps != "" {
				left += "\n" + steps
			}
		}
		if left == "" {
			return
		}
		if time.Now().After(deadline) {
			j.t.Logf("after %s, still there:\n%s", limit, left)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// passFailCases are run over SSH and again with the local transport.
var passFailCases = []struct {
	name, profile, config string
	knobs                 map[string]string
	want                  int
}{
	{"pass v1", "v1", "tc_ctx1_gen1_3nodes", nil, 0},
	{"pass v2 with precheck", "v2", "tc_ctx1_gen1_3nodes", nil, 0},
	{"pytest fails", "v1", "tc_ctx1_gen1_2nodes", map[string]string{"STANDIN_EXIT": "1"}, 1},
	{"no tests collected", "v2", "tc_ctx1_gen1_2nodes", map[string]string{"STANDIN_EXIT": "5"}, 5},
	{"benchmark crashes without a pytest line", "v1", "tc_ctx1_gen1_2nodes", map[string]string{"STANDIN_CRASH": "1"}, 14},
	{"install step fails", "v1", "tc_gen_only_1node", map[string]string{"STANDIN_INSTALL_EXIT": "3"}, 14},
	// The v2 stand-in draft behaves as TensorRT-LLM's current one: a failing
	// benchmark or server makes it dump every role's log tail (each ending
	// with that role's own Rank0 line, code 0) and cancel the job.
	{"v2 benchmark fails, roles dumped", "v2", "tc_ctx1_gen1_2nodes", map[string]string{"STANDIN_EXIT": "1"}, 1},
	{"v2 benchmark passes but a server fails", "v2", "tc_ctx1_gen1_2nodes", map[string]string{"STANDIN_SERVER_EXIT": "3"}, 14},
	{"pass v3 with precheck", "v3", "tc_ctx1_gen1_2nodes", nil, 0},
	{"pass v3 gen-only without context servers", "v3", "tc_gen_only_1node", nil, 0},
	{"pytest fails v3", "v3", "tc_ctx1_gen1_2nodes", map[string]string{"STANDIN_EXIT": "1"}, 1},
	{"v3 benchmark fails, roles dumped", "v3", "tc_ctx1_gen1_2nodes", map[string]string{"STANDIN_EXIT": "1"}, 1},
	// The precheck fails before any server starts: no pytest result, even
	// though the gate copies the failed steps' srun reports into the job log.
	{"v3 precheck fails", "v3", "tc_ctx1_gen1_2nodes", map[string]string{"STANDIN_PRECHECK_FAIL": "1"}, 14},
}

func TestRunOverSSHPassAndFail(t *testing.T) {
	for _, c := range passFailCases {
		t.Run(c.name, func(t *testing.T) {
			j := newJob(t, c.profile, c.config, c.knobs)
			r := j.run()
			if r.code != c.want {
				t.Fatalf("exit %d, want %d", r.code, c.want)
			}
			if r.summary == nil || int(r.summary["exit_code"].(float64)) != c.want {
				t.Errorf("summary.json: %v", r.summary)
			}
			for _, stage := range []string{"stage 1/8", "stage 2/8", "stage 3/8", "stage 4/8", "stage 5/8", "stage 6/8", "stage 7/8", "stage 8/8"} {
				if !strings.Contains(r.stderr, "==> "+stage) {
					t.Errorf("no %s header", stage)
				}
			}
			if !strings.Contains(r.stderr, fmt.Sprintf("verdict: exit %d", c.want)) {
				t.Errorf("no verdict line for exit %d", c.want)
			}
			if c.want == 0 {
				if st, ec := r.summary["state"], r.summary["slurm_exit_code"]; st != "COMPLETED" || ec != "0:0" {
					t.Errorf("Slurm says %v %v, want COMPLETED 0:0", st, ec)
				}
				// Accounting holds the same final record.
				id, _ := r.summary["job_id"].(string)
				if acct := j.slurm("sacct", "-X", "-P", "-n", "-j", id, "-o", "State,ExitCode"); acct != "COMPLETED|0:0" {
					t.Errorf("sacct says %q, want COMPLETED|0:0", acct)
				}
			}
			if c.config == "tc_ctx1_gen1_3nodes" {
				checkPlacement(t, j, r)
			}
			if strings.Contains(c.name, "dumped") {
				src, _ := r.summary["pytest_exit_code_source"].(string)
				if !strings.Contains(r.stdout, "===== Per-role log tails") || !strings.Contains(src, "dump ignored") {
					t.Errorf("pytest's code from %q; stdout has the dump: %v", src, strings.Contains(r.stdout, "===== Per-role log tails"))
				}
			}
			if c.want == 0 || c.want == 1 {
				if _, err := os.Stat(filepath.Join(j.resultsDir(), "results.xml")); err != nil {
					t.Errorf("results.xml not collected: %v", err)
				}
			}
			// Slurm's end against the moment the runner noticed it. How
			// soon is a performance figure, measured by bench/all;
			// the limit here is far above it and only catches an end that
			// the sentinel and sacct both missed (the controller's safety
			// net alone polls every 2 minutes while sacct agrees).
			if ended, noticed := summaryTime(r.summary, "ended"), summaryTime(r.summary, "end_noticed"); !ended.IsZero() && !noticed.IsZero() {
				lag := noticed.Sub(ended)
				t.Logf("end lag: Slurm end %s, noticed %s, lag %s", ended.Format(time.TimeOnly), noticed.Format(time.StampMilli), lag.Round(time.Millisecond))
				if lag > time.Minute {
					t.Errorf("the end was noticed %s after Slurm's end time: was it only the controller's safety net?", lag)
				}
			}
		})
	}
}

// checkPlacement reads where the stand-in's roles ran (each rank records
// its node) and compares with the draft's node slices: GEN_0 (tp8) on the
// first two nodes, CTX_0 (tp4) on the third, the router on the first.
func checkPlacement(t *testing.T, j *job, r jobResult) {
	t.Helper()
	id, _ := r.summary["job_id"].(string)
	coord, _ := filepath.Glob(filepath.Join(j.jobWorkspace(), "*", "standin-coord", id+".*"))
	coord2, _ := filepath.Glob(filepath.Join(j.jobWorkspace(), "standin-coord", id+".*"))
	coord = append(coord, coord2...)
	if len(coord) != 1 {
		t.Fatalf("coordination folder of job %s: found %v", id, coord)
	}
	nodesOf := func(role string) map[string]bool {
		files, _ := filepath.Glob(filepath.Join(coord[0], "ranks", role+".rank*"))
		nodes := map[string]bool{}
		for _, f := range files {
			b, _ := os.ReadFile(f)
			nodes[strings.TrimSpace(string(b))] = true
		}
		return nodes
	}
	want := map[string]string{"GEN_0": "node1 node2", "CTX_0": "node3"}
	for role, nodes := range want {
		got := nodesOf(role)
		var names []string
		for n := range got {
			names = append(names, n)
		}
		sort.Strings(names)
		if strings.Join(names, " ") != nodes {
			t.Errorf("%s ran on %v, want %s", role, names, nodes)
		}
	}
	router, err := os.ReadFile(filepath.Join(coord[0], "DISAGG_SERVER"))
	if err != nil || !strings.HasPrefix(string(router), "node1:") {
		t.Errorf("router: %q %v, want it on node1", router, err)
	}
}

func summaryTime(s map[string]any, key string) time.Time {
	v, _ := s[key].(string)
	tm, _ := time.Parse(time.RFC3339Nano, v)
	return tm
}

// TestRunLocalTransport is the pass/fail table again on a login node: no
// SSH at all.
func TestRunLocalTransport(t *testing.T) {
	for _, c := range passFailCases {
		t.Run(c.name, func(t *testing.T) {
			j := newJob(t, c.profile, c.config, c.knobs).local()
			r := j.run()
			if r.code != c.want {
				t.Fatalf("exit %d, want %d", r.code, c.want)
			}
			if tr, _ := r.summary["transport"].(string); tr != "local" {
				t.Errorf("transport %q, want local", tr)
			}
		})
	}
}

func TestRunStdoutIsTheJobLog(t *testing.T) {
	j := newJob(t, "v1", "tc_gen_only_1node", map[string]string{"STANDIN_LOG_LINES": "30", "STANDIN_LOG_INTERVAL": "0.1"})
	r := j.run()
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	onCluster, err := os.ReadFile(filepath.Join(j.jobWorkspace(), "job-output.log"))
	if err != nil {
		t.Fatal(err)
	}
	if r.stdout != string(onCluster) {
		t.Fatalf("stdout (%d bytes) is not the job log on the cluster (%d bytes)", len(r.stdout), len(onCluster))
	}
	if !strings.Contains(r.stdout, "standin log line 30/30") {
		t.Errorf("the benchmark's lines are not in the streamed log")
	}
	if strings.Contains(r.stderr+r.stdout, "\x1b[") {
		t.Errorf("ANSI escape in the output of a run without a terminal")
	}
}

func TestRunDryRun(t *testing.T) {
	j := newJob(t, "v2", "tc_ctx1_gen1_3nodes", nil)
	r := j.run("--dry-run")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	if !strings.Contains(r.stdout, "export totalNodes=3") || !strings.Contains(r.stdout, "srunArgs=(") {
		t.Errorf("dry run did not print the script:\n%s", r.stdout)
	}
	if _, err := os.Stat(j.jobWorkspace()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dry run created the job workspace")
	}
}

func TestRunBadPartition(t *testing.T) {
	j := newJob(t, "v1", "tc_gen_only_1node", nil)
	j.env["CLUSTER_PARTITION"] = "nosuchpartition"
	r := j.run()
	if r.code != 13 {
		t.Fatalf("exit %d, want 13", r.code)
	}
	if !strings.Contains(r.stderr, "Invalid partition name specified") {
		t.Errorf("sbatch's message is not shown")
	}
}

func TestRunWrongHostKey(t *testing.T) {
	j := newJob(t, "v1", "tc_gen_only_1node", nil)
	bad := filepath.Join(t.TempDir(), "known_hosts")
	// A valid key that is not the login node's.
	os.WriteFile(bad, []byte("[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"), 0o644)
	j.env["CLUSTER_KNOWN_HOSTS"] = bad
	r := j.run()
	if r.code != 12 {
		t.Fatalf("exit %d, want 12", r.code)
	}
	if _, err := os.Stat(j.jobWorkspace()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("something was created on the cluster despite the wrong host key")
	}
}

func TestRunUnreachableHost(t *testing.T) {
	j := newJob(t, "v1", "tc_gen_only_1node", nil)
	j.env["CLUSTER_PORT"] = "1" // nothing listens there
	j.env["CLUSTER_RECONNECT_BUDGET"] = "3s"
	start := time.Now()
	r := j.run()
	if r.code != 12 {
		t.Fatalf("exit %d, want 12", r.code)
	}
	t.Logf("gave up after %s", time.Since(start).Round(time.Millisecond))
}

func TestRunSIGTERMCancelsJob(t *testing.T) {
	for _, profile := range []string{"v1", "v3"} {
		t.Run(profile, func(t *testing.T) {
			j := newJob(t, profile, "tc_ctx1_gen1_2nodes", nil)
			j.hold() // runs until cancelled
			run := j.start()
			id := j.running()
			run.runnerSawRunning()
			sent := time.Now()
			run.cmd.Process.Signal(syscall.SIGTERM)
			// Cancelling waits up to 60 s for Slurm to confirm, collecting
			// up to 60 s more: beyond both, the runner hangs.
			r := run.waitWithin(patience)
			t.Logf("runner exited %s after SIGTERM", time.Since(sent).Round(time.Millisecond))
			if r.code != 143 {
				t.Fatalf("exit %d, want 143", r.code)
			}
			if why := j.notCancelled(id); why != "" {
				t.Error(why)
			}
		})
	}
}

// TestRunSIGTERMWhileTheDraftDumpsRoleLogs: the benchmark failed and the
// draft is dumping the role logs (slowed down) when Jenkins aborts.
func TestRunSIGTERMWhileTheDraftDumpsRoleLogs(t *testing.T) {
	j := newJob(t, "v2", "tc_ctx1_gen1_2nodes", map[string]string{"STANDIN_EXIT": "1", "STANDIN_DUMP_DELAY": "20"})
	run := j.start()
	run.stdout.waitFor(t, "===== Per-role log tails (reason: benchmark failed")
	run.cmd.Process.Signal(syscall.SIGTERM)
	r := run.waitWithin(patience)
	if r.code != 143 {
		t.Fatalf("exit %d, want 143", r.code)
	}
	if !strings.Contains(r.stdout, "Rank0 Pytest finished execution with exit code 1") {
		t.Errorf("the benchmark's own line did not reach stdout")
	}
}

func TestRunCancelledBySomeoneElse(t *testing.T) {
	j := newJob(t, "v1", "tc_gen_only_1node", nil)
	j.hold() // runs until cancelled
	run := j.start()
	id := j.running()
	run.runnerSawRunning()
	j.slurm("scancel", id)
	r := run.wait()
	if r.code != 14 {
		t.Fatalf("exit %d, want 14", r.code)
	}
}

func TestRunTimeLimit(t *testing.T) {
	j := newJob(t, "v1", "tc_gen_only_1node", map[string]string{"STANDIN_SLEEP": "300"})
	j.env["CLUSTER_TIME"] = "1"
	r := j.run()
	if r.code != 124 {
		t.Fatalf("exit %d, want 124", r.code)
	}
}

func TestRunRequeueRestartsLog(t *testing.T) {
	j := newJob(t, "v1", "tc_gen_only_1node", map[string]string{"STANDIN_LOG_LINES": "20", "STANDIN_LOG_INTERVAL": "0.5"})
	j.noSelfCancel()
	release := j.hold() // the first run does not end before it is requeued
	run := j.start()
	id := j.running()
	// Requeued once the runner has streamed part of the first run's log:
	// only then is there something for the truncation to cut.
	run.stdout.waitFor(t, "standin log line 3/20")
	if out := j.slurm("scontrol", "requeue", id); out != "" {
		t.Logf("scontrol requeue: %s", out)
	}
	// A requeued job waits about two minutes (BeginTime) before it may
	// start again; an operator's "start it now", once it is pending again
	// and its first run's steps are gone (see requeueSettled), keeps the
	// test short.
	j.requeueSettled(id, patience)
	if out := j.slurm("scontrol", "update", "JobId="+id, "StartTime=now"); out != "" {
		t.Logf("scontrol update: %s", out)
	}
	release() // the second run may end
	r := run.wait()
	if r.code != 0 {
		t.Fatalf("exit %d, want 0; the job log's end:\n%s\nSlurm's logs:\n%s", r.code, lastLines(r.stdout, 40), testcluster.SlurmLog(j.env, id))
	}
	if !strings.Contains(r.stdout, "was truncated") {
		t.Errorf("no truncation marker in the streamed log")
	}
}

// noSelfCancel takes the scancel out of the job's copy of the v1 stand-in
// draft, for tests that requeue the job. The draft cancels its own job
// when a step fails (upstream's fail_and_cancel). A requeue kills the
// steps and signals the batch script at once; on a loaded machine a
// step's failure can reach the draft first, and its scancel then cancels
// the requeued job (a busy CI run saw it 19 ms after the requeue). The
// runner reports that as it is, a cancelled job (exit 14); these tests
// are about following a requeue.
func (j *job) noSelfCancel() {
	j.t.Helper()
	draft := filepath.Join(j.checkout, launch.DraftPath)
	b, err := os.ReadFile(draft)
	if err != nil {
		j.t.Fatal(err)
	}
	const cancel = `scancel "${SLURM_JOB_ID}"`
	if n := strings.Count(string(b), cancel); n != 1 {
		j.t.Fatalf("the stand-in draft has %d %s, want 1: noSelfCancel no longer disarms what it should", n, cancel)
	}
	if err := os.WriteFile(draft, []byte(strings.Replace(string(b), cancel, ": no scancel, see noSelfCancel", 1)), 0o644); err != nil {
		j.t.Fatal(err)
	}
}

// lastLines is the end of a log, for a failure's message.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestRunSurvivesDroppedConnection kills the login node's sshd process of
// the runner's connection while the job runs: the runner reconnects and
// its stdout still holds the job log exactly once.
func TestRunSurvivesDroppedConnection(t *testing.T) {
	cenv := clusterEnv(t)
	j := newJob(t, "v1", "tc_gen_only_1node", map[string]string{"STANDIN_LOG_LINES": "40", "STANDIN_LOG_INTERVAL": "0.25"})
	release := j.hold()
	run := j.start()
	t.Logf("job %s running", j.running())
	// Dropped while the log streams: the runner has streamed some of it,
	// and the job goes on (held) until the connection is cut.
	run.stdout.waitFor(t, "standin log line 4/40")
	killed := killSSHDSessions(t, cenv["TESTCLUSTER_STATE"])
	t.Logf("killed sshd session processes %v", killed)
	release()
	r := run.wait()
	if r.code != 0 {
		t.Fatalf("exit %d, want 0", r.code)
	}
	if len(killed) == 0 {
		t.Fatal("found no sshd session process to kill")
	}
	onCluster, err := os.ReadFile(filepath.Join(j.jobWorkspace(), "job-output.log"))
	if err != nil {
		t.Fatal(err)
	}
	if r.stdout != string(onCluster) {
		t.Fatalf("stdout (%d bytes) differs from the job log (%d bytes) after a reconnect", len(r.stdout), len(onCluster))
	}
}

// killSSHDSessions kills the per-connection children of the login node's
// listening sshd (found by its pid file in the cluster's state folder).
func killSSHDSessions(t *testing.T, state string) []int {
	pidFiles, _ := filepath.Glob(filepath.Join(state, "run", "sshd*.pid"))
	if len(pidFiles) == 0 {
		pidFiles, _ = filepath.Glob(filepath.Join(state, "*sshd*.pid"))
	}
	if len(pidFiles) == 0 {
		t.Fatalf("no sshd pid file under %s", state)
	}
	b, _ := os.ReadFile(pidFiles[0])
	listener := strings.TrimSpace(string(b))
	var killed []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Field 4 of /proc/<pid>/stat is the parent pid.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) > 1 && f[1] == listener {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed = append(killed, pid)
			}
		}
	}
	return killed
}

// TestRunOneSSHConnection counts the login node's accepted connections
// during one run.
func TestRunOneSSHConnection(t *testing.T) {
	cenv := clusterEnv(t)
	logPath := cenv["TESTCLUSTER_SSHD_LOG"]
	before := countAccepted(t, logPath)
	j := newJob(t, "v2", "tc_ctx1_gen1_2nodes", nil)
	if r := j.run(); r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	n := countAccepted(t, logPath) - before
	t.Logf("SSH connections opened by one run: %d", n)
	if n != 1 {
		t.Errorf("one run opened %d SSH connections, want 1", n)
	}
}

var acceptedRe = regexp.MustCompile(`Accepted publickey`)

func countAccepted(t *testing.T, path string) int {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	s := bufio.NewScanner(f)
	for s.Scan() {
		if acceptedRe.Match(s.Bytes()) {
			n++
		}
	}
	return n
}

// TestRunWithoutAccounting restarts the cluster without accounting (sacct
// answers "disabled") and with a 5-second MinJobAge (finished jobs vanish
// from scontrol quickly), then restores it. The end must still be seen and
// the code right.
func TestRunWithoutAccounting(t *testing.T) {
	clusterEnv(t)
	restart := func(args ...string) {
		t.Helper()
		out, err := exec.Command("scripts/testcluster", append([]string{"up"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("scripts/testcluster up %v: %v\n%s", args, err, out)
		}
	}
	restart("--no-accounting", "--min-job-age", "5")
	t.Cleanup(func() { restart() })
	for _, c := range []struct {
		knobs map[string]string
		want  int
	}{{nil, 0}, {map[string]string{"STANDIN_EXIT": "1"}, 1}} {
		j := newJob(t, "v1", "tc_ctx1_gen1_2nodes", c.knobs)
		r := j.run()
		if r.code != c.want {
			t.Fatalf("knobs %v: exit %d, want %d", c.knobs, r.code, c.want)
		}
		if ended, noticed := summaryTime(r.summary, "ended"), summaryTime(r.summary, "end_noticed"); !ended.IsZero() {
			t.Logf("end lag without accounting: %s", noticed.Sub(ended).Round(time.Millisecond))
		}
		// A sentinel lost to the job's own scancel (its SIGTERM can still
		// land before the EXIT trap ignores TERM) leaves the end to the
		// safety net, which comes after MinJobAge: the end is then known,
		// the final state not, and the code must still be right.
		switch src, state := r.summary["state_source"], r.summary["state"]; {
		case src == "scontrol":
		case src == nil && state == nil:
			t.Logf("knobs %v: the final state was lost (no sentinel, forgotten before the safety net looked); code %d from the job log", c.knobs, r.code)
		default:
			t.Errorf("final state %v from %v, want one from scontrol (there is no accounting), or none", state, src)
		}
	}
}

// startAndLose starts a run, waits until its job runs, then SIGKILLs the
// runner, as a lost Jenkins agent would vanish.
func startAndLose(t *testing.T, j *job) string {
	t.Helper()
	run := j.start()
	id := j.running()
	run.cmd.Process.Kill()
	run.cmd.Wait()
	return id
}

func TestRerunReattachesInsteadOfResubmitting(t *testing.T) {
	j := newJob(t, "v1", "tc_gen_only_1node", nil)
	release := j.hold() // the job runs until the rerun has found it
	id := startAndLose(t, j)
	rerun := j.start() // the same run id: a retried Jenkins step
	rerun.stderr.waitFor(t, "following it instead of submitting again")
	release()
	r := rerun.wait()
	if r.code != 0 {
		t.Fatalf("exit %d, want 0", r.code)
	}
	if !strings.Contains(r.stderr, "following it instead of submitting again") {
		t.Error("the rerun did not say it re-attached")
	}
	if got, _ := r.summary["job_id"].(string); got != id {
		t.Errorf("the rerun followed job %q, want the first attempt's %s", got, id)
	}
}

// TestRerunAfterFinishedJobSubmitsAnew: a retried step whose earlier job
// already ended runs the test again, in a clean job workspace.
func TestRerunAfterFinishedJobSubmitsAnew(t *testing.T) {
	j := newJob(t, "v1", "tc_gen_only_1node", map[string]string{"STANDIN_EXIT": "1"})
	first := j.run()
	if first.code != 1 {
		t.Fatalf("first attempt: exit %d, want 1", first.code)
	}
	os.WriteFile(filepath.Join(j.checkout, "standin.env"), nil, 0o644) // the retry passes
	second := j.run()
	if second.code != 0 {
		t.Fatalf("retry: exit %d, want 0", second.code)
	}
	if first.summary["job_id"] == second.summary["job_id"] {
		t.Errorf("the retry re-attached to the finished job %v", first.summary["job_id"])
	}
	aside := j.jobWorkspace() + ".job" + first.summary["job_id"].(string)
	if _, err := os.Stat(filepath.Join(aside, "job-output.log")); err != nil {
		t.Errorf("the first attempt's workspace was not kept aside: %v", err)
	}
}

func TestAttachAfterLostRunner(t *testing.T) {
	j := newJob(t, "v1", "tc_gen_only_1node", map[string]string{"STANDIN_SLEEP": "6", "STANDIN_EXIT": "1"})
	id := startAndLose(t, j)
	results := filepath.Join(t.TempDir(), "results")
	// No --job-workspace: attach learns it from Slurm (the output file).
	cmd := exec.Command(binary, "attach", id, "--results", results)
	cmd.Env = j.command().Env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("attach: %v, want exit 1\n%s", err, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(results, "results.xml")); err != nil {
		t.Errorf("attach collected no results.xml: %v", err)
	}
}

func TestStatusAndCancel(t *testing.T) {
	j := newJob(t, "v1", "tc_gen_only_1node", nil)
	j.hold() // runs until cancelled
	id := startAndLose(t, j)
	env := j.command().Env
	status := exec.Command(binary, "status", id)
	status.Env = env
	out, err := status.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "job "+id+": RUNNING") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	cancel := exec.Command(binary, "cancel", id)
	cancel.Env = env
	out, err = cancel.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "CANCELLED") {
		t.Fatalf("cancel: %v\n%s", err, out)
	}
	bad := exec.Command(binary, "status", "12;reboot")
	bad.Env = env
	if out, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(out), "expected a Slurm job id") {
		t.Errorf("status accepted a bad job id: %s", out)
	}
}

// TestRunReportsPending holds every node with another job so that the run
// waits in PENDING, and checks that the wait is reported with its reason,
// repeatedly, and that the run then finishes normally. The other job holds
// the nodes until the run has repeated the report.
func TestRunReportsPending(t *testing.T) {
	j := newJob(t, "v1", "tc_gen_only_1node", nil)
	release := filepath.Join(j.workdir, "release-the-nodes") // the nodes are this machine
	blocker := j.slurm("sbatch", "--parsable", "-N4", "--exclusive", "--gpus-per-node=4", "-p", j.env["CLUSTER_PARTITION"], "-A", j.env["CLUSTER_ACCOUNT"], "-o", "/dev/null",
		"--wrap", "until [ -e "+shellquote.Quote(release)+" ]; do sleep 0.5; done")
	t.Logf("blocking job %s", blocker)
	t.Cleanup(func() { j.slurm("scancel", blocker) })
	j.env["DISAGG_PENDING_EVERY"] = "2s"
	run := j.start()
	run.stderr.waitFor(t, "still PENDING")
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := run.wait()
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	if !strings.Contains(r.stderr, "job PENDING") || !regexp.MustCompile(`still PENDING job=\d+ reason=(Resources|Priority)`).MatchString(r.stderr) {
		t.Errorf("the PENDING state and its reason were not reported")
	}
	if n := strings.Count(r.stderr, "still PENDING"); n < 1 {
		t.Errorf("no repeated PENDING line during a wait of several seconds")
	}
}

func TestRunFollowRoles(t *testing.T) {
	j := newJob(t, "v2", "tc_ctx1_gen1_2nodes", map[string]string{"STANDIN_LOG_LINES": "10", "STANDIN_LOG_INTERVAL": "0.1"})
	r := j.run("--follow-roles")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	for _, role := range []string{"[gen_server_0] ", "[ctx_server_0] ", "[disagg_server] "} {
		if !strings.Contains(r.stdout, "\n"+role) {
			t.Errorf("no line of %s in the output", strings.TrimSpace(role))
		}
	}
	// Every job log line arrives whole: the role lines never split one.
	onCluster, _ := os.ReadFile(filepath.Join(j.jobWorkspace(), "job-output.log"))
	var jobLines []string
	for _, l := range strings.SplitAfter(r.stdout, "\n") {
		if !strings.HasPrefix(l, "[gen_server_") && !strings.HasPrefix(l, "[ctx_server_") && !strings.HasPrefix(l, "[disagg_server]") {
			jobLines = append(jobLines, l)
		}
	}
	if strings.Join(jobLines, "") != string(onCluster) {
		t.Errorf("without the role lines, stdout is not the job log")
	}
}

// TestRunSecondSignalExitsAtOnce: the first SIGINT starts the orderly
// cancel; a second one does not wait for it. The orderly cancel is held in
// scancel (a stand-in on the login node's PATH that waits for the test),
// so the run can only end through the second signal. The local transport
// runs the stand-in: the signal handling is the same over SSH.
func TestRunSecondSignalExitsAtOnce(t *testing.T) {
	j := newJob(t, "v1", "tc_gen_only_1node", nil).local()
	j.hold() // runs until cancelled
	scancel, err := exec.LookPath("scancel")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	entered, release := filepath.Join(bin, "entered"), filepath.Join(bin, "release")
	wrapper := fmt.Sprintf("#!/bin/bash\ntouch %s\nuntil [ -e %s ]; do sleep 0.1; done\nexec %s \"$@\"\n",
		shellquote.Quote(entered), shellquote.Quote(release), shellquote.Quote(scancel))
	if err := os.WriteFile(filepath.Join(bin, "scancel"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := j.command()
	prependPath(cmd, bin)
	run := j.startCmd(cmd)
	id := j.running()
	t.Cleanup(func() {
		os.WriteFile(release, nil, 0o644)
		j.slurm("scancel", id)
	})
	run.runnerSawRunning()
	run.cmd.Process.Signal(syscall.SIGINT)
	run.stderr.waitFor(t, "interrupted: cancelling the job")
	waitForFile(t, entered) // the orderly cancel is under way, and held
	run.cmd.Process.Signal(syscall.SIGINT)
	r := run.waitWithin(patience)
	if r.code != 130 {
		t.Fatalf("exit %d, want 130", r.code)
	}
	if strings.Contains(r.stderr, "job cancelled") || strings.Contains(r.stderr, "==> stage 7/8") {
		t.Errorf("the run went on with the orderly cancel after the second signal")
	}
}

// waitForFile polls for a file that a stand-in creates.
func waitForFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %s", path, patience)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitForText waits until the local file at path holds text (a log the
// runner keeps as it streams).
func waitForText(t *testing.T, path, text string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(text)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not show %q within %s", path, text, patience)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRunJSONLog: --log-format json makes every runner line on stderr a
// JSON object (the dry run needs no cluster).
func TestRunJSONLog(t *testing.T) {
	j := newJob(t, "v2", "tc_ctx1_gen1_2nodes", nil)
	r := j.run("--dry-run", "--log-format", "json")
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if len(lines) < 6 {
		t.Fatalf("only %d lines", len(lines))
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["msg"] == nil || m["time"] == nil {
			t.Errorf("not a JSON log record: %q", l)
		}
	}
}

// TestRunSignalBeforeSubmission: interrupted while still connecting, the
// run exits with the signal's code, not the connection's.
func TestRunSignalBeforeSubmission(t *testing.T) {
	j := newJob(t, "v1", "tc_gen_only_1node", nil)
	j.env["CLUSTER_PORT"] = "1"
	j.env["CLUSTER_RECONNECT_BUDGET"] = "60s"
	run := j.start()
	// Connecting (and retrying for up to a minute): the signal handlers
	// were set up long before.
	run.stderr.waitFor(t, "==> stage 4/8")
	run.cmd.Process.Signal(syscall.SIGTERM)
	if r := run.wait(); r.code != 143 {
		t.Fatalf("exit %d, want 143", r.code)
	}
}

// TestRunSignalDuringSubmission sends SIGTERM while sbatch runs (an sbatch
// wrapper on the login node's PATH that has submitted the job and waits for
// the test before it prints the id): the job sbatch created must be
// recorded and cancelled, not left behind.
func TestRunSignalDuringSubmission(t *testing.T) {
	j := newJob(t, "v1", "tc_gen_only_1node", nil).local()
	j.hold() // runs until cancelled
	bin := t.TempDir()
	marker, release := filepath.Join(bin, "submitted"), filepath.Join(bin, "release")
	wrapper := "#!/bin/bash\nout=$(/usr/bin/sbatch \"$@\") || exit\ntouch " + marker +
		"\nuntil [ -e " + release + " ]; do sleep 0.1; done\nprintf '%s\\n' \"$out\"\n"
	if err := os.WriteFile(filepath.Join(bin, "sbatch"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(release, nil, 0o644) })
	cmd := j.command()
	prependPath(cmd, bin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitForFile(t, marker)
	cmd.Process.Signal(syscall.SIGTERM)
	os.WriteFile(release, nil, 0o644) // sbatch answers only now, after the signal
	r := j.result(cmd.Wait(), stdout.String(), stderr.String())
	if r.code != 143 {
		t.Fatalf("exit %d, want 143", r.code)
	}
	id := j.jobID(5 * time.Second)
	if why := j.notCancelled(id); why != "" {
		t.Errorf("job %s was left behind: %s", id, why)
	}
}

// TestRunPerfVerdictOnTheCluster: the stand-in benchmark prints real-shaped
// result blocks; the runner reads them, writes the summaries and the
// report, and judges them against a baseline.
func TestRunPerfVerdictOnTheCluster(t *testing.T) {
	base := newJob(t, "v2", "tc_ctx1_gen1_2nodes", map[string]string{"STANDIN_OUTPUT_TPUT": "1000"})
	r := base.run()
	if r.code != 0 || !strings.Contains(r.stderr, "perf verdict: no baseline") {
		t.Fatalf("baseline run: exit %d", r.code)
	}
	for _, name := range []string{"perf-summary.json", "perf-summary.md", "perf-junit.xml", "report.html"} {
		if _, err := os.Stat(filepath.Join(base.resultsDir(), name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	baseline := filepath.Join(base.resultsDir(), "perf-summary.json")
	cases := []struct {
		name  string
		knobs map[string]string
		args  []string
		want  int
		says  string
	}{
		{"10 % worse, reported", map[string]string{"STANDIN_OUTPUT_TPUT": "900"}, nil, 0, "perf verdict: regressed"},
		{"10 % worse, fails the run", map[string]string{"STANDIN_OUTPUT_TPUT": "900"}, []string{"--fail-on-regression"}, 15, "pytest passed but performance regressed"},
		{"2 % worse passes", map[string]string{"STANDIN_OUTPUT_TPUT": "980"}, []string{"--fail-on-regression"}, 0, "perf verdict: pass"},
		{"failed requests are incomplete", map[string]string{"STANDIN_OUTPUT_TPUT": "1000", "STANDIN_FAILED_REQUESTS": "3"}, nil, 0, "incomplete"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := newJob(t, "v2", "tc_ctx1_gen1_2nodes", c.knobs)
			r := j.run(append([]string{"--baseline", baseline}, c.args...)...)
			if r.code != c.want || !strings.Contains(r.stderr, c.says) {
				t.Errorf("exit %d (want %d); stderr says %q: %v", r.code, c.want, c.says, strings.Contains(r.stderr, c.says))
			}
		})
	}
}

// TestRunV3Precheck runs perf-sanity-v3's cache-transceiver precheck on
// the cluster: on from the 2-node config's YAML, off through
// TRTLLM_DISAGG_CT_PRECHECK, and on through it for the 3-node config
// (whose YAML has it off). The precheck steps must get the models root
// that ctPrecheckModelRootEnv carries.
func TestRunV3Precheck(t *testing.T) {
	cases := []struct {
		name, config, sw string // sw: TRTLLM_DISAGG_CT_PRECHECK ("" = unset)
		enabled          bool
		jobLog           string // a line the job log must hold
	}{
		{"on from the YAML", "tc_ctx1_gen1_2nodes", "", true, "Cache transceiver precheck PASSED for all 2 servers"},
		{"switched off", "tc_ctx1_gen1_2nodes", "off", false, "Cache transceiver precheck disabled (ctPrecheckEnabled=0)"},
		{"switched on", "tc_ctx1_gen1_3nodes", "1", true, "Cache transceiver precheck PASSED for all 2 servers"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := newJob(t, "v3", c.config, nil)
			if c.sw != "" {
				j.env["TRTLLM_DISAGG_CT_PRECHECK"] = c.sw
			}
			r := j.run()
			if r.code != 0 {
				t.Fatalf("exit %d, want 0", r.code)
			}
			launch, err := os.ReadFile(filepath.Join(j.workspace, "disagg-runner", j.runID, "launch.sh"))
			if err != nil {
				t.Fatal(err)
			}
			enabled := map[bool]string{true: "1", false: "0"}[c.enabled]
			if !bytes.Contains(launch, []byte("\nexport ctPrecheckEnabled="+enabled+"\n")) {
				t.Errorf("launch.sh does not export ctPrecheckEnabled=%s", enabled)
			}
			if !strings.Contains(r.stdout, c.jobLog) {
				t.Errorf("the job log lacks %q", c.jobLog)
			}
			precheck := filepath.Join(j.jobWorkspace(), "disagg_upload-e2e-"+c.config, "cache_transceiver_precheck")
			if !c.enabled {
				if _, err := os.Stat(precheck); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the precheck ran although it is off: %v", err)
				}
				return
			}
			// The precheck steps' command starts with the models root.
			models := "LLM_MODELS_ROOT=" + j.env["CLUSTER_LLM_DATA"] + " "
			for _, step := range []string{"gen_0", "ctx_0"} {
				b, err := os.ReadFile(filepath.Join(precheck, "logs", step+".log"))
				if err != nil {
					t.Errorf("precheck %s: %v", step, err)
					continue
				}
				if !strings.Contains(string(b), models) {
					t.Errorf("precheck %s was not given %q:\n%s", step, models, b)
				}
			}
			if c.config == "tc_ctx1_gen1_3nodes" {
				checkPlacement(t, j, r)
			}
		})
	}
}

// TestRunV3GenOnlyWithoutContext: a gen_only test id whose config says
// gen_only_no_context runs without any CTX server, on one node.
func TestRunV3GenOnlyWithoutContext(t *testing.T) {
	j := newJob(t, "v3", "tc_gen_only_1node", nil)
	r := j.run()
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	launch, _ := os.ReadFile(filepath.Join(j.workspace, "disagg-runner", j.runID, "launch.sh"))
	if !bytes.Contains(launch, []byte("\nexport TRTLLM_DISAGG_BENCHMARK_GEN_ONLY=1\n")) || !bytes.Contains(launch, []byte("\nexport totalNodes=1\n")) {
		t.Errorf("launch.sh is not a one-node gen-only script")
	}
	id, _ := r.summary["job_id"].(string)
	coord, _ := filepath.Glob(filepath.Join(j.jobWorkspace(), "standin-coord", id+".*"))
	if len(coord) != 1 {
		t.Fatalf("coordination folder of job %s: found %v", id, coord)
	}
	if gen, _ := filepath.Glob(filepath.Join(coord[0], "ranks", "GEN_0.rank*")); len(gen) != 4 {
		t.Errorf("GEN_0 ran %d ranks, want 4", len(gen))
	}
	if ctx, _ := filepath.Glob(filepath.Join(coord[0], "ranks", "CTX_*")); len(ctx) != 0 {
		t.Errorf("a CTX server ran: %v", ctx)
	}
	router, _ := os.ReadFile(filepath.Join(coord[0], "DISAGG_SERVER"))
	if strings.Contains(string(router), "CTX_") {
		t.Errorf("the router waited for a CTX server: %q", router)
	}
	if !strings.Contains(r.stdout, "Gen-only benchmark without context servers") {
		t.Errorf("the draft did not run in gen-only mode")
	}
}

// TestRunV3ProfileCheckout: with DISAGG_PROFILE=checkout the checkout's
// own submit.py (our stand-in, testdata/checkout-generator, which writes
// the launch.sh a dry run of ours made for the same run) makes launch.sh
// with python3, and the rest of the pipeline runs as usual.
func TestRunV3ProfileCheckout(t *testing.T) {
	j := newJob(t, "v3", "tc_ctx1_gen1_2nodes", nil)
	if out, err := exec.Command("python3", "-c", "import yaml").CombinedOutput(); err != nil {
		t.Skipf("needs python3 with PyYAML on this machine (Debian: python3-yaml): %v %s", err, out)
	}
	if r := j.run("--dry-run"); r.code != 0 {
		t.Fatalf("dry run: exit %d", r.code)
	}
	ours, err := os.ReadFile(filepath.Join(j.workspace, "disagg-runner", j.runID, "launch.sh"))
	if err != nil {
		t.Fatal(err)
	}
	perf := filepath.Join(j.checkout, "jenkins", "scripts", "perf")
	copyFile(t, filepath.Join("testdata", "checkout-generator", "submit.py"), filepath.Join(perf, "submit.py"))
	if err := os.WriteFile(filepath.Join(perf, "standin_launch.sh"), ours, 0o644); err != nil {
		t.Fatal(err)
	}
	j.env["DISAGG_PROFILE"] = "checkout"
	r := j.run()
	if r.code != 0 {
		t.Fatalf("exit %d, want 0", r.code)
	}
	if !strings.Contains(r.stderr, `profile="checkout: the checkout's jenkins/scripts/perf/submit.py"`) {
		t.Errorf("launch.sh was not made by the checkout's submit.py")
	}
	if p := r.summary["profile"]; p != "checkout" {
		t.Errorf("summary.json profile %v, want checkout", p)
	}
	if argv, err := os.ReadFile(filepath.Join(perf, "standin_argv.json")); err != nil || !strings.Contains(string(argv), `"--stage-name", "tc_ctx1_gen1_2nodes"`) {
		t.Errorf("the checkout's submit.py did not run with the run's inputs: %v %s", err, argv)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
