package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// listCase is one test of a list run: a copy of a stand-in config under
// its own name, with per-job knobs (standin.d/<name>.env) and, for the
// one that must time out, a short slurm.job_time.
type listCase struct {
	name, from string
	knobs      string
	jobTime    string
	want       int
}

// listJob prepares a v1 run of several tests: each case's config is
// written into the job's checkout copy.
func listJob(t *testing.T, cases []listCase) *job {
	t.Helper()
	j := newJob(t, "v1", "", nil)
	dir := filepath.Join(j.checkout, "tests/integration/defs/perf/disagg/test_configs/disagg/perf")
	os.MkdirAll(filepath.Join(j.checkout, "standin.d"), 0o755)
	var names []string
	for _, c := range cases {
		b, err := os.ReadFile(filepath.Join(dir, c.from+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if c.jobTime != "" {
			b = regexp.MustCompile(`(?m)^(\s*job_time:).*$`).ReplaceAll(b, []byte("${1} "+c.jobTime))
		}
		if err := os.WriteFile(filepath.Join(dir, c.name+".yaml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if c.knobs != "" {
			if err := os.WriteFile(filepath.Join(j.checkout, "standin.d", c.name+".env"), []byte(c.knobs+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		names = append(names, c.name)
	}
	delete(j.env, "CONFIG_NAME")
	list := filepath.Join(t.TempDir(), "tests.txt")
	text := "# a perf list\n\n" + strings.Join(names, "\n") + "\n"
	if err := os.WriteFile(list, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	j.env["DISAGG_TESTS"] = list
	return j
}

// runSummary is results/summary.json of a run of several tests.
type runSummary struct {
	ExitCode int `json:"exit_code"`
	Tests    []struct {
		Test     string    `json:"test"`
		JobID    string    `json:"job_id"`
		ExitCode int       `json:"exit_code"`
		State    string    `json:"state"`
		Reason   string    `json:"reason"`
		Started  time.Time `json:"started"`
		Ended    time.Time `json:"ended"`
	} `json:"tests"`
	Started time.Time `json:"runner_started"`
	Ended   time.Time `json:"runner_ended"`
}

func readRunSummary(t *testing.T, j *job) runSummary {
	t.Helper()
	var s runSummary
	b, err := os.ReadFile(filepath.Join(j.workspace, "disagg-runner", j.runID, "results", "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// jobInfoRPCs is what slurmctld has answered to job-information requests
// so far (sdiag, all users: the tests run one at a time).
func jobInfoRPCs(t *testing.T, j *job) int {
	t.Helper()
	out := j.slurm("sdiag")
	n := 0
	re := regexp.MustCompile(`(?m)^\s+REQUEST_(FED_INFO|JOB_INFO_SINGLE|JOB_INFO|JOB_USER_INFO)\s+\(\s*\d+\)\s+count:(\d+)`)
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		c, _ := strconv.Atoi(m[2])
		n += c
	}
	return n
}

// TestRunList runs six tests of mixed sizes (2 and 3 nodes, and 1) on the
// 4-node cluster as one run: the jobs queue and start as nodes free up,
// one benchmark fails and one job hits its time limit. Each test gets its
// own verdict, the run the most serious code (TIMEOUT's 124 over pytest's
// 1), over one SSH connection, and the watch costs slurmctld what one job
// costs.
func TestRunList(t *testing.T) {
	cenv := clusterEnv(t)
	cases := []listCase{
		{name: "la_2nodes", from: "tc_ctx1_gen1_2nodes", want: 0},
		{name: "lb_3nodes", from: "tc_ctx1_gen1_3nodes", want: 0},
		{name: "lc_2nodes_fails", from: "tc_ctx1_gen1_2nodes", knobs: "STANDIN_EXIT=1", want: 1},
		{name: "ld_1node", from: "tc_gen_only_1node", want: 0},
		{name: "le_1node_timeout", from: "tc_gen_only_1node", knobs: "STANDIN_SLEEP=300", jobTime: "00:01:00", want: 124},
		{name: "lf_3nodes", from: "tc_ctx1_gen1_3nodes", want: 0},
	}
	// One job's figure, measured the same way (RPCs over the runner's
	// whole run), for a job about as long as the list's run.
	one := newJob(t, "v1", "tc_ctx1_gen1_2nodes", map[string]string{"STANDIN_SLEEP": "60"})
	before := jobInfoRPCs(t, one)
	r1 := one.run()
	oneRPCs := jobInfoRPCs(t, one) - before
	if r1.code != 0 {
		t.Fatalf("one job: exit %d", r1.code)
	}
	oneMinutes := summaryTime(r1.summary, "runner_ended").Sub(summaryTime(r1.summary, "runner_started")).Minutes()
	onePerMin := float64(oneRPCs) / oneMinutes
	t.Logf("one job: %d job-information RPCs in %.2f min (%.1f per minute)", oneRPCs, oneMinutes, onePerMin)

	j := listJob(t, cases)
	sshBefore := countAccepted(t, cenv["TESTCLUSTER_SSHD_LOG"])
	rpcBefore := jobInfoRPCs(t, j)
	r := j.start().waitWithin(15 * time.Minute)
	rpcs := jobInfoRPCs(t, j) - rpcBefore
	ssh := countAccepted(t, cenv["TESTCLUSTER_SSHD_LOG"]) - sshBefore

	if r.code != 124 {
		t.Errorf("exit %d, want 124 (TIMEOUT is more serious than pytest's 1)", r.code)
	}
	s := readRunSummary(t, j)
	if s.ExitCode != r.code || len(s.Tests) != len(cases) {
		t.Fatalf("summary: exit %d, %d tests", s.ExitCode, len(s.Tests))
	}
	var firstEnd, lastStart time.Time
	for i, c := range cases {
		got := s.Tests[i]
		if got.Test != c.name || got.ExitCode != c.want || got.JobID == "" {
			t.Errorf("test %s: %+v, want exit %d", c.name, got, c.want)
		}
		if firstEnd.IsZero() || got.Ended.Before(firstEnd) {
			firstEnd = got.Ended
		}
		if got.Started.After(lastStart) {
			lastStart = got.Started
		}
		log, err := os.ReadFile(filepath.Join(j.workspace, "disagg-runner", j.runID, "results", c.name, "job-output.log"))
		if err != nil || !bytes.Contains(log, []byte("standin")) {
			t.Errorf("test %s: job log kept in its results folder: %v (%d bytes)", c.name, err, len(log))
		}
	}
	// 11 nodes' worth of jobs on 4 nodes: some had to wait for others.
	if !lastStart.After(firstEnd.Add(-time.Second)) {
		t.Errorf("no job started after another ended (last start %s, first end %s): did they queue?", lastStart, firstEnd)
	}
	// The job logs go to files, not to stdout; the runner's lines name
	// their test.
	if strings.Contains(r.stdout, "standin log") || !strings.Contains(r.stderr, "lc_2nodes_fails") {
		t.Errorf("stdout should hold no job log and stderr should name the tests\n--- stdout:\n%s", r.stdout)
	}
	// Not on a terminal, stdout is the board's plain lines: each test's
	// state changes, in order, ending with its verdict. (A short job can
	// end before its first look: it goes from SUBMITTED to its end.)
	for i, c := range cases {
		verdict := "PASSED"
		if c.want != 0 {
			verdict = fmt.Sprintf("EXIT %d", c.want)
		}
		re := regexp.MustCompile(`(?s)` + c.name + `: SUBMITTED job ` + s.Tests[i].JobID + `\n.*` + c.name + `: ` + verdict + ` `)
		if !re.MatchString(r.stdout) {
			t.Errorf("stdout has no SUBMITTED ... %s sequence for %s:\n%s", verdict, c.name, r.stdout)
		}
	}
	if !regexp.MustCompile(`(?m)^\S+ l[a-f]_\w+: RUNNING on node`).MatchString(r.stdout) {
		t.Errorf("stdout shows no test RUNNING:\n%s", r.stdout)
	}
	var suites struct {
		Failures int `xml:"failures,attr"`
		Suites   []struct {
			Name string `xml:"name,attr"`
		} `xml:"testsuite"`
	}
	b, err := os.ReadFile(filepath.Join(j.workspace, "disagg-runner", j.runID, "results", "tests-junit.xml"))
	if err != nil || xml.Unmarshal(b, &suites) != nil || len(suites.Suites) != len(cases) || suites.Failures != 2 {
		t.Errorf("tests-junit.xml: %v %+v\n%s", err, suites, b)
	}

	minutes := s.Ended.Sub(s.Started).Minutes()
	t.Logf("list of %d tests: %d SSH connection(s), %d job-information RPCs in %.1f min (%.1f per minute)", len(cases), ssh, rpcs, minutes, float64(rpcs)/minutes)
	if ssh != 1 {
		t.Errorf("%d SSH connections, want 1", ssh)
	}
	// The watches share their queries: six jobs cost the controller at
	// most half of what six runs of one would. (Per minute, 1.1 to 1.5
	// times one job's rate in the runs the README reports: a ratio of
	// rates over runs this short is too noisy on a shared machine for a
	// test to hold it to 1.5.)
	if limit := len(cases) * oneRPCs / 2; rpcs > limit {
		t.Errorf("%d job-information RPCs for %d jobs, want at most %d (half of %d separate runs of %d)", rpcs, len(cases), limit, len(cases), oneRPCs)
	}
}

// TestRunListSIGTERMAndRerun interrupts a run of three tests while its
// jobs run or wait: no job of the run stays in Slurm. One test's job (the
// 1-node one, which always gets a node) ignores SIGTERM, so Slurm keeps
// it COMPLETING until KillWait (30 s): the runner confirms its cancel
// from accounting after 10 s, and the rerun right after takes it as ended
// and submits that test anew. A rerun with
// the same run id while a job of an earlier attempt still runs follows
// that job instead of submitting it again.
func TestRunListSIGTERMAndRerun(t *testing.T) {
	clusterEnv(t)
	cases := []listCase{
		{name: "sa_3nodes", from: "tc_ctx1_gen1_3nodes"},
		{name: "sb_2nodes", from: "tc_ctx1_gen1_2nodes"},
		{name: "sc_1node", from: "tc_gen_only_1node", knobs: "STANDIN_IGNORE_TERM=1"},
	}
	j := listJob(t, cases)
	release := j.hold()
	run := j.start()
	// Once sc_1node's benchmark waits, its every role ignores SIGTERM.
	waitForText(t, filepath.Join(j.workspace, "disagg-runner", j.runID, "results", "sc_1node", "job-output.log"), "STANDIN_HOLD_FILE: waiting")
	run.cmd.Process.Signal(syscall.SIGTERM)
	r := run.waitWithin(3 * time.Minute)
	if r.code != 143 {
		t.Errorf("exit %d, want 143", r.code)
	}
	// A job still COMPLETING has ended, if accounting recorded its
	// cancel (Slurm may take until KillWait to stop a process that a
	// kill racing a step's launch missed).
	for _, line := range strings.Split(j.slurm("squeue", "-h", "-o", "%i %j %T"), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || !strings.Contains(f[1], j.runID) {
			continue
		}
		if why := j.notCancelled(f[0]); f[2] != "COMPLETING" || why != "" {
			t.Errorf("a job of the run is still in Slurm after SIGTERM: %s %s", line, why)
		}
	}
	s := readRunSummary(t, j)
	for _, tc := range s.Tests {
		if tc.ExitCode != 143 {
			t.Errorf("test %s: exit %d, want 143", tc.Test, tc.ExitCode)
		}
	}
	if !strings.Contains(r.stderr, "sc_1node: job cancelled; Slurm is still stopping its processes") {
		t.Errorf("the job that ignores SIGTERM was not confirmed from accounting:\n%s", lastLines(r.stderr, 30))
	}

	// The rerun: an attempt that lost its runner (SIGKILL) once every job
	// was submitted leaves live jobs (held by the benchmark); the next
	// attempt follows them and submits nothing.
	run = j.start()
	for _, c := range cases {
		run.stderr.waitFor(t, c.name+": submitted job=")
	}
	// sc_1node's first job was still COMPLETING (KillWait is 30 s).
	if !strings.Contains(run.stderr.String(), "sc_1node: an earlier attempt of this run ended") {
		t.Errorf("the rerun did not take the COMPLETING job as ended")
	}
	submitted := map[string]string{}
	for _, m := range regexp.MustCompile(`(\S+): submitted job=(\d+)`).FindAllStringSubmatch(run.stderr.String(), -1) {
		submitted[m[1]] = m[2]
	}
	run.cmd.Process.Kill()
	run.cmd.Wait()
	third := j.start()
	for _, c := range cases {
		third.stderr.waitFor(t, c.name+": an earlier attempt of this run submitted a job that is still")
	}
	release()
	r = third.waitWithin(10 * time.Minute)
	if r.code != 0 {
		t.Fatalf("rerun: exit %d", r.code)
	}
	s = readRunSummary(t, j)
	for _, tc := range s.Tests {
		if submitted[tc.Test] != tc.JobID {
			t.Errorf("test %s: the rerun ended with job %s, want the earlier attempt's %s", tc.Test, tc.JobID, submitted[tc.Test])
		}
	}
	if n := countSubmitted(t, r.stderr); n != 0 {
		t.Errorf("the rerun submitted %d jobs, want none", n)
	}
}

// countSubmitted counts the runner's "submitted" lines.
func countSubmitted(t *testing.T, stderr string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		if regexp.MustCompile(`INFO \S+ submitted job=`).MatchString(sc.Text()) {
			n++
		}
	}
	return n
}

// TestRunIDCommands loses the runner of a two-test run once both jobs
// run, then works with the run by its id: status prints a line per test,
// attach follows both jobs, and cancel (from elsewhere) cancels both; the
// attach then ends with each test cancelled by someone else (exit 14).
func TestRunIDCommands(t *testing.T) {
	clusterEnv(t)
	cases := []listCase{
		{name: "ra_2nodes", from: "tc_ctx1_gen1_2nodes"},
		{name: "rb_1node", from: "tc_gen_only_1node"},
	}
	j := listJob(t, cases)
	j.hold()
	run := j.start()
	for _, c := range cases {
		run.stderr.waitFor(t, c.name+": job RUNNING")
	}
	run.cmd.Process.Kill()
	run.cmd.Wait()

	command := func(args ...string) *exec.Cmd {
		cmd := exec.Command(binary, args...)
		cmd.Env = j.command().Env
		return cmd
	}
	out, err := command("status", j.runID).CombinedOutput()
	for _, c := range cases {
		if err != nil || !regexp.MustCompile(`(?m)^`+c.name+`: job \d+: RUNNING`).Match(out) {
			t.Errorf("status %s: %v\n%s", j.runID, err, out)
		}
	}
	attach := j.startCmd(command("attach", j.runID, "--follow", "rb_1node"))
	for _, c := range cases {
		attach.stderr.waitFor(t, c.name+": ==> stage 6/8")
	}
	out, err = command("cancel", j.runID).CombinedOutput()
	for _, c := range cases {
		if err != nil || !regexp.MustCompile(`(?m)^`+c.name+`: job \d+: CANCELLED`).Match(out) {
			t.Errorf("cancel %s: %v\n%s", j.runID, err, out)
		}
	}
	r := attach.waitWithin(3 * time.Minute)
	if r.code != 14 {
		t.Errorf("attach: exit %d, want 14 (cancelled by someone else)", r.code)
	}
	s := readRunSummary(t, j)
	if len(s.Tests) != len(cases) || s.ExitCode != 14 {
		t.Errorf("attach's summary: %+v", s)
	}
	// --follow streams that test's log to stdout, and only that one.
	if !strings.Contains(r.stdout, "rb_1node") || strings.Contains(r.stdout, "ra_2nodes") {
		t.Errorf("attach --follow rb_1node printed:\n%s", r.stdout)
	}
	if out := j.slurm("squeue", "-h", "-o", "%j"); strings.Contains(out, j.runID) {
		t.Errorf("jobs of the run still in Slurm:\n%s", out)
	}
}
