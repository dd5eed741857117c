package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/atomicfile"
	"github.com/disagg-runner/disagg-runner/internal/fakecluster"
	"github.com/disagg-runner/disagg-runner/internal/perf"
	"github.com/disagg-runner/disagg-runner/internal/transport"
	"github.com/disagg-runner/disagg-runner/sbatch"
)

// These tests drive every branch of the pipeline against the in-memory
// cluster of internal/fakecluster; the real-cluster tests at the top of
// the repository prove the same paths on Slurm and OpenSSH.

const jobWS = "/cluster/work/r1"

var atomicfileWrite = atomicfile.Write

func logWith(code int) []byte {
	return []byte(fmt.Sprintf("+ export HF_TOKEN=hf_secret\nstarting servers\nRank0 Pytest finished execution with exit code %d\n", code))
}

type fixture struct {
	t        *testing.T
	s        Settings
	cl       *fakecluster.Cluster
	out, log bytes.Buffer
	con      *Console
	connects int
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	checkout, err := filepath.Abs(filepath.Join("..", "testdata", "trtllm-v2"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, cl: fakecluster.New()}
	f.s = Settings{
		Partition: "batch", Account: "acct", DockerImage: "nvcr.io/nvidia/tensorrt-llm/release:1.0", LLMData: "/models",
		MPIType: "pmix", TRTLLMDir: checkout, Workspace: t.TempDir(), ConfigName: "tc_ctx1_gen1_2nodes",
		ClusterWork: "/cluster/work", RunID: "r1",
		Names: func(f Field) string { return strings.ToUpper(strings.ReplaceAll(f, " ", "_")) },
	}
	f.cl.OnSubmit = func(dir string) { f.cl.SetFile(dir+"/job-output.log", logWith(0)) }
	f.con = NewConsole(&f.out, &f.log, false, nil)
	return f
}

func (f *fixture) connect(ctx context.Context) (Cluster, error) {
	f.connects++
	return f.cl, nil
}

func (f *fixture) run(ctx context.Context, opt Options) (*Outcome, error) {
	f.t.Helper()
	out, err := Run(ctx, f.s, opt, f.connect, f.con)
	f.t.Logf("runner log:\n%s", f.log.String())
	return out, err
}

func (f *fixture) localDir() string   { return filepath.Join(f.s.Workspace, "disagg-runner", "r1") }
func (f *fixture) resultsDir() string { return filepath.Join(f.localDir(), "results") }

func (f *fixture) summary() Outcome {
	f.t.Helper()
	var o Outcome
	b, err := os.ReadFile(filepath.Join(f.resultsDir(), SummaryName))
	if err != nil {
		f.t.Fatal(err)
	}
	if err := json.Unmarshal(b, &o); err != nil {
		f.t.Fatal(err)
	}
	return o
}

func TestRunPassesAndStreamsTheJobLog(t *testing.T) {
	f := newFixture(t)
	out, err := f.run(context.Background(), Options{})
	if err != nil || out.ExitCode != 0 {
		t.Fatalf("exit %d, err %v", out.ExitCode, err)
	}
	if got, want := f.out.String(), "+ export HF_TOKEN=****\nstarting servers\nRank0 Pytest finished execution with exit code 0\n"; got != want {
		t.Errorf("stdout %q, want the job log (masked) %q", got, want)
	}
	if s := f.summary(); s.ExitCode != 0 || s.JobID != "42" || s.State != "COMPLETED" || s.PytestSource != "the benchmark step's Rank0 line" {
		t.Errorf("summary %+v", s)
	}
	for _, name := range []string{TestListName, ScriptPrefixName, SrunArgsName, LaunchName, JobIDName} {
		if _, err := os.Stat(filepath.Join(f.localDir(), name)); err != nil {
			t.Errorf("local %s: %v", name, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(f.resultsDir(), "job-output.log")); bytes.Contains(b, []byte("hf_secret")) {
		t.Errorf("collected log keeps the secret: %q", b)
	}
	if launch, _ := f.cl.File(jobWS + "/launch.sh"); !bytes.Contains(launch, []byte("srunArgs=(")) {
		t.Errorf("uploaded launch.sh: %.200q", launch)
	}
	// The log streams while the state is watched: those two run
	// concurrently, every other call in this order.
	want := []string{"probe", "recorded " + jobWS + "/job_id", "upload " + jobWS + "/launch.sh", "upload " + jobWS + "/test_list.txt",
		"submit " + jobWS + " launch.sh", "watch 42", "fetch " + jobWS + " except [job-output.log]"}
	var got []string
	for _, c := range f.cl.Calls {
		if !strings.HasPrefix(c, "follow ") {
			got = append(got, c)
		}
	}
	if strings.Join(got, "|") != strings.Join(want, "|") || f.cl.Called("follow "+jobWS+"/job-output.log") != 1 {
		t.Errorf("calls\n got %q\nwant %q and one follow of the job log", f.cl.Calls, want)
	}
	if f.connects != 1 || !f.cl.Closed() {
		t.Errorf("%d connections, closed %v: want one, closed", f.connects, f.cl.Closed())
	}
}

func TestRunPassesPytestsCodeThrough(t *testing.T) {
	for _, code := range []int{1, 5} {
		f := newFixture(t)
		f.cl.OnSubmit = func(dir string) { f.cl.SetFile(dir+"/job-output.log", logWith(code)) }
		f.cl.Final.State = "FAILED"
		out, err := f.run(context.Background(), Options{})
		if err != nil || out.ExitCode != code || f.summary().ExitCode != code {
			t.Errorf("pytest %d: exit %d, err %v", code, out.ExitCode, err)
		}
	}
}

func TestRunReattachesToALiveJob(t *testing.T) {
	f := newFixture(t)
	f.cl.SetFile(jobWS+"/job_id", []byte("7\n"))
	f.cl.SetFile(jobWS+"/job-output.log", logWith(0))
	f.cl.States["7"] = sbatch.JobState{State: "RUNNING"}
	out, err := f.run(context.Background(), Options{})
	if err != nil || out.ExitCode != 0 || !out.Reattached || out.JobID != "7" {
		t.Fatalf("exit %d, err %v, reattached %v, job %s", out.ExitCode, err, out.Reattached, out.JobID)
	}
	if f.cl.Called("submit") != 0 || f.cl.Called("upload") != 0 || f.cl.Called("watch 7") != 1 {
		t.Errorf("calls %q: want no submission, no upload, a watch of job 7", f.cl.Calls)
	}
}

// An ended job is one in a final state, or one the controller forgot while
// accounting never recorded its end (Settle's EndUnrecorded).
func TestRunMovesAnEndedJobAsideAndSubmitsAgain(t *testing.T) {
	for name, ended := range map[string]sbatch.JobState{
		"failed":             {State: "FAILED"},
		"end never recorded": {State: "REQUEUED", EndUnrecorded: true},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.cl.SetFile(jobWS+"/job_id", []byte("7\n"))
			f.cl.SetFile(jobWS+"/job-output.log", []byte("old log\n"))
			f.cl.States["7"] = ended
			stale := filepath.Join(f.resultsDir(), "stale.log")
			os.MkdirAll(f.resultsDir(), 0o755)
			os.WriteFile(stale, []byte("from the earlier attempt"), 0o644)

			out, err := f.run(context.Background(), Options{})
			if err != nil || out.ExitCode != 0 || out.JobID != "42" || out.Reattached {
				t.Fatalf("exit %d, err %v, job %s, reattached %v", out.ExitCode, err, out.JobID, out.Reattached)
			}
			if f.cl.Called("moveaside "+jobWS+" "+jobWS+".job7") != 1 || f.cl.Called("submit") != 1 {
				t.Errorf("calls %q: want the old workspace moved aside, then one submission", f.cl.Calls)
			}
			if old, _ := f.cl.File(jobWS + ".job7/job-output.log"); string(old) != "old log\n" {
				t.Errorf("the earlier attempt's log was not kept aside: %q", old)
			}
			if _, err := os.Stat(stale); !os.IsNotExist(err) {
				t.Errorf("the earlier attempt's local results are still there: %v", err)
			}
		})
	}
}

func TestRunInterruptedBeforeSubmissionSubmitsNothing(t *testing.T) {
	// The signal arrives while stage 4 connects: stage 5 never starts.
	f := newFixture(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	connect := func(c context.Context) (Cluster, error) {
		cancel(Interrupt{Signal: syscall.SIGTERM})
		return f.connect(c)
	}
	_, err := Run(ctx, f.s, Options{}, connect, f.con)
	var in Interrupt
	if !errors.As(err, &in) || in.Signal != syscall.SIGTERM {
		t.Fatalf("err %v, want the interruption", err)
	}
	if f.cl.Called("submit") != 0 || f.cl.Called("cancel") != 0 {
		t.Errorf("calls %q: nothing may be submitted", f.cl.Calls)
	}
	if !f.cl.Closed() {
		t.Error("the connection was not released")
	}
}

func TestRunInterruptedDuringSubmissionCancelsTheJob(t *testing.T) {
	// A signal while sbatch runs must not lose the job: it is recorded,
	// then cancelled, and the run exits with the signal's code.
	f := newFixture(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	f.cl.OnSubmit = func(dir string) { cancel(Interrupt{Signal: syscall.SIGTERM}) }
	out, err := f.run(ctx, Options{})
	if err != nil || out.ExitCode != 143 || out.JobID != "42" || out.State != "CANCELLED" {
		t.Fatalf("exit %d, err %v, job %q %s", out.ExitCode, err, out.JobID, out.State)
	}
	if f.cl.Called("cancel 42") != 1 {
		t.Errorf("calls %q: want job 42 cancelled", f.cl.Calls)
	}
	if id, _ := os.ReadFile(filepath.Join(f.localDir(), JobIDName)); string(id) != "42\n" {
		t.Errorf("local job id %q", id)
	}
}

func TestRunInterruptedWhileFollowingCancelsCollectsAndExits143(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	f.cl.Hold, f.cl.WatchStarted = make(chan struct{}), make(chan struct{})
	go func() {
		<-f.cl.WatchStarted
		cancel(Interrupt{Signal: syscall.SIGTERM})
	}()
	out, err := f.run(ctx, Options{})
	if err != nil || out.ExitCode != 143 || !strings.HasPrefix(out.Reason, "interrupted; job cancelled") {
		t.Fatalf("exit %d, err %v, reason %q", out.ExitCode, err, out.Reason)
	}
	if f.cl.Called("cancel 42") != 1 || f.cl.Called("fetch") != 1 {
		t.Errorf("calls %q: want the job cancelled, then its results fetched", f.cl.Calls)
	}
	if s := f.summary(); s.ExitCode != 143 || s.State != "CANCELLED" {
		t.Errorf("summary %+v", s)
	}
}

// A signal while collecting (the job had ended): collecting goes on, and
// the summary says what the process exits with.
func TestRunInterruptedWhileCollectingStillCollectsAndExits143(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	f.cl.OnFetch = func() { cancel(Interrupt{Signal: syscall.SIGTERM}) }
	out, err := f.run(ctx, Options{})
	if err != nil || out.ExitCode != 143 || !strings.HasPrefix(out.Reason, "interrupted after the job ended (pytest passed)") {
		t.Fatalf("exit %d, err %v, reason %q", out.ExitCode, err, out.Reason)
	}
	if f.cl.Called("cancel 42") != 0 {
		t.Errorf("calls %q: the ended job was cancelled", f.cl.Calls)
	}
	if len(out.Fetched) == 0 || strings.Contains(f.log.String(), "collecting results failed") {
		t.Errorf("nothing collected after the signal: fetched %v\n%s", out.Fetched, f.log.String())
	}
	if s := f.summary(); s.ExitCode != 143 {
		t.Errorf("summary says exit %d, want 143", s.ExitCode)
	}
}

func TestRunWatchFailureCollectsAndExits14(t *testing.T) {
	f := newFixture(t)
	f.cl.WatchErr = errors.New("slurmctld and accounting both forgot the job")
	out, err := f.run(context.Background(), Options{})
	if err != nil || out.ExitCode != 14 || !strings.Contains(out.Reason, "following the job failed: slurmctld and accounting") {
		t.Fatalf("exit %d, err %v, reason %q", out.ExitCode, err, out.Reason)
	}
	if f.cl.Called("fetch") != 1 || f.summary().ExitCode != 14 {
		t.Errorf("calls %q: want what exists collected and the summary written", f.cl.Calls)
	}
}

// A login node out of reach for the whole reconnect budget after
// submission: the cluster could not be reached (12), not a failed job.
func TestRunLoginNodeLostAfterSubmissionExits12(t *testing.T) {
	f := newFixture(t)
	f.cl.WatchErr = transport.Unreachable(errors.New("ssh root@login:22: still unreachable after 5 attempts in 10s"))
	out, err := f.run(context.Background(), Options{})
	if err != nil || out.ExitCode != 12 || !strings.Contains(out.Reason, "following the job failed: ssh root@login:22: still unreachable") {
		t.Fatalf("exit %d, err %v, reason %q", out.ExitCode, err, out.Reason)
	}
	if f.cl.Called("cancel 42") != 0 || f.summary().ExitCode != 12 {
		t.Errorf("calls %q, summary %+v: want the job left alone and exit 12 in the summary", f.cl.Calls, f.summary())
	}
}

func TestRunCollectFailureStillDecidesFromTheStreamedLog(t *testing.T) {
	f := newFixture(t)
	f.cl.FetchErr = errors.New("tar: broken pipe")
	out, err := f.run(context.Background(), Options{})
	if err != nil || out.ExitCode != 0 || out.Reason != "pytest passed" {
		t.Fatalf("exit %d, err %v, reason %q", out.ExitCode, err, out.Reason)
	}
	if !strings.Contains(f.log.String(), "collecting results failed") || !strings.Contains(f.log.String(), "stage 7/8: collect results failed") {
		t.Errorf("the failed collect is not reported:\n%s", f.log.String())
	}
	if f.summary().ExitCode != 0 {
		t.Error("no summary")
	}
}

func TestRunFetchesTheJobLogWhenTheStreamBroke(t *testing.T) {
	f := newFixture(t)
	f.cl.FollowErr = errors.New("ssh: still unreachable")
	f.cl.FetchErr = errors.New("tar: broken pipe")
	out, err := f.run(context.Background(), Options{})
	if f.cl.Called("fetch "+jobWS+" except []") != 1 {
		t.Errorf("calls %q: want the job log fetched again", f.cl.Calls)
	}
	// Neither the stream nor the fetch is known to have delivered the
	// whole log: the verdict reads what arrived, and the run says so.
	if err != nil || out.ExitCode != 0 || !strings.Contains(f.log.String(), "the job log in the results is what streamed before streaming stopped") {
		t.Fatalf("exit %d, err %v, reason %q", out.ExitCode, err, out.Reason)
	}
}

// A fetched file whose secret cannot be masked is removed and fails the
// run. The job log was masked as it streamed: it is kept and never
// rewritten.
func TestRunFailsWhenASecretCannotBeMasked(t *testing.T) {
	f := newFixture(t)
	f.cl.OnSubmit = func(dir string) {
		f.cl.SetFile(dir+"/job-output.log", logWith(0))
		f.cl.SetFile(dir+"/install.log", []byte("+ export HF_TOKEN=hf_secret\n"))
	}
	var rewritten []string
	maskFileHook = func(p string) error {
		rewritten = append(rewritten, filepath.Base(p))
		return errors.New("disk full")
	}
	defer func() { maskFileHook = nil }()
	out, err := f.run(context.Background(), Options{})
	var me *MaskError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "install.log") || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err %v, want a MaskError naming the file", err)
	}
	if _, serr := os.Stat(filepath.Join(f.resultsDir(), "install.log")); !os.IsNotExist(serr) {
		t.Errorf("the unmasked log is still there to be archived: %v", serr)
	}
	if b, rerr := os.ReadFile(filepath.Join(f.resultsDir(), "job-output.log")); rerr != nil || !bytes.Contains(b, []byte("HF_TOKEN=****")) || bytes.Contains(b, []byte("hf_secret")) {
		t.Errorf("the job log kept as it streamed: %q, %v; want it masked", b, rerr)
	}
	if !slices.Equal(rewritten, []string{"install.log"}) {
		t.Errorf("files masked after collecting: %q, want only install.log (the job log was masked as it streamed)", rewritten)
	}
	if s := f.summary(); len(s.Unmasked) != 1 || out.ExitCode != 0 {
		t.Errorf("summary %+v", s)
	}
}

func TestRunStopsAtStage1OnMissingSettingsWithoutConnecting(t *testing.T) {
	f := newFixture(t)
	f.s.DockerImage, f.s.Account = "", ""
	_, err := f.run(context.Background(), Options{})
	var cf *CheckFailed
	if !errors.As(err, &cf) || cf.OnlyInputs() || len(cf.Items) != 2 || !strings.Contains(err.Error(), "CLUSTER_ACCOUNT set: not set") && !strings.Contains(err.Error(), "ACCOUNT set: not set") {
		t.Fatalf("err %v, want both missing settings named", err)
	}
	if f.connects != 0 {
		t.Error("stage 1 contacted the cluster")
	}
	if _, err := os.Stat(f.localDir()); !os.IsNotExist(err) {
		t.Errorf("stage 1 wrote files: %v", err)
	}
}

func TestRunBadValueIsInputAndNamedAsTheUserKnowsIt(t *testing.T) {
	f := newFixture(t)
	f.s.Partition = "batch\n#SBATCH --uid=0"
	_, err := f.run(context.Background(), Options{})
	var cf *CheckFailed
	if !errors.As(err, &cf) || !cf.OnlyInputs() || !strings.Contains(err.Error(), `PARTITION="batch\n#SBATCH --uid=0": expected a Slurm partition name`) {
		t.Fatalf("err %v", err)
	}
	if f.connects != 0 {
		t.Error("bad local input must be reported before any connection")
	}
}

func TestRunTimeLimitFromTheConfigIsNamedAsTheConfigsField(t *testing.T) {
	f := newFixture(t)
	p := planPaths(f.s)
	if err := p.loadConfig(f.s); err != nil {
		t.Fatal(err)
	}
	p.TimeLimit = "2 hours" // as if slurm.job_time said so
	err := p.buildInputs(f.s)
	if err == nil || !strings.HasPrefix(err.Error(), "slurm.job_time in "+p.ConfigPath) {
		t.Fatalf("err %v", err)
	}
}

func TestRunUnreachableCluster(t *testing.T) {
	f := newFixture(t)
	connect := func(context.Context) (Cluster, error) { return nil, errors.New("ssh x: connection refused") }
	_, err := Run(context.Background(), f.s, Options{}, connect, f.con)
	var cf *CheckFailed
	if !errors.As(err, &cf) || !cf.Has(Connection) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err %v", err)
	}
}

func TestRunClusterChecklistStopsBeforeUpload(t *testing.T) {
	f := newFixture(t)
	f.cl.Facts.NodeDirPresent = false
	f.cl.Facts.FilePresent = []bool{false, false}
	f.cl.Facts.Partition.State = "DOWN" // sbatch's to judge: only a warning
	_, err := f.run(context.Background(), Options{})
	var cf *CheckFailed
	if !errors.As(err, &cf) || cf.Has(Connection) || cf.OnlyInputs() || len(cf.Items) != 3 {
		t.Fatalf("err %v (%+v)", err, cf)
	}
	if f.cl.Called("upload") != 0 || f.cl.Called("submit") != 0 {
		t.Errorf("calls %q", f.cl.Calls)
	}
	if !strings.Contains(f.log.String(), "partition exists: batch is DOWN (sbatch will decide)") {
		t.Errorf("the partition warning is missing:\n%s", f.log.String())
	}
}

func TestRunUploadsScriptsTheClustersCheckoutLacks(t *testing.T) {
	f := newFixture(t)
	f.cl.Facts.FilePresent = []bool{false, true}
	if _, err := f.run(context.Background(), Options{}); err != nil {
		t.Fatal(err)
	}
	runSh := f.s.TRTLLMDir + "/jenkins/scripts/slurm_run.sh"
	want, _ := os.ReadFile(runSh)
	if got, ok := f.cl.File(runSh); !ok || !bytes.Equal(got, want) {
		t.Errorf("run script not uploaded (calls %q)", f.cl.Calls)
	}
	if f.cl.Called("upload "+f.s.TRTLLMDir+"/jenkins/scripts/slurm_install.sh") != 0 {
		t.Error("a script the cluster has was uploaded")
	}
}

func TestRunSubmitRefused(t *testing.T) {
	f := newFixture(t)
	f.cl.SubmitErr = fmt.Errorf("%w: sbatch: error: invalid partition specified", sbatch.ErrSubmitRefused)
	_, err := f.run(context.Background(), Options{})
	if !errors.Is(err, sbatch.ErrSubmitRefused) {
		t.Fatalf("err %v", err)
	}
	if f.cl.Called("watch") != 0 {
		t.Error("a refused job was followed")
	}
}

func TestRunDryRunContactsNoCluster(t *testing.T) {
	f := newFixture(t)
	out, err := f.run(context.Background(), Options{DryRun: true})
	if err != nil || out.Reason != "dry run" || f.connects != 0 {
		t.Fatalf("err %v, reason %q, %d connections", err, out.Reason, f.connects)
	}
	if !strings.Contains(f.out.String(), "srunArgs=(") {
		t.Errorf("stdout does not hold the script: %.300q", f.out.String())
	}
}

func TestRunFollowRolesPrefixesRoleLines(t *testing.T) {
	f := newFixture(t)
	f.cl.OnSubmit = func(dir string) {
		f.cl.SetFile(dir+"/job-output.log", logWith(0))
		f.cl.SetFile(dir+"/gen_server_0.log", []byte("gen ready\n"))
	}
	if _, err := f.run(context.Background(), Options{FollowRoles: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.out.String(), "[gen_server_0.log] gen ready\n") || !strings.Contains(f.out.String(), "exit code 0\n") {
		t.Errorf("stdout %q", f.out.String())
	}
}

func TestAttachFindsTheWorkspaceFromSlurm(t *testing.T) {
	f := newFixture(t)
	f.cl.States["42"] = sbatch.JobState{State: "RUNNING", StdOut: jobWS + "/job-output.log"}
	f.cl.SetFile(jobWS+"/job-output.log", logWith(1))
	f.cl.SetFile(jobWS+"/test_list.txt", []byte("perf/test_perf_sanity.py::test_e2e[disagg_upload-e2e-x]\n"))
	f.cl.Final.State = "FAILED"
	results := t.TempDir()
	out, err := Attach(context.Background(), f.cl, "42", "", results, Options{}, f.con)
	if err != nil || out.ExitCode != 1 || out.TestID != "perf/test_perf_sanity.py::test_e2e[disagg_upload-e2e-x]" {
		t.Fatalf("err %v, out %+v", err, out)
	}
	if _, err := os.Stat(filepath.Join(results, SummaryName)); err != nil {
		t.Error(err)
	}
}

func TestAttachUnknownJob(t *testing.T) {
	f := newFixture(t)
	_, err := Attach(context.Background(), f.cl, "99", "", t.TempDir(), Options{}, f.con)
	if !errors.Is(err, sbatch.ErrUnknownJob) {
		t.Fatalf("err %v", err)
	}
	f.cl.States["99"] = sbatch.JobState{State: "RUNNING"}
	_, err = Attach(context.Background(), f.cl, "99", "", t.TempDir(), Options{}, f.con)
	var nw *NoWorkspaceError
	if !errors.As(err, &nw) {
		t.Fatalf("err %v, want NoWorkspaceError", err)
	}
}

func TestCheckReportsBothHalves(t *testing.T) {
	f := newFixture(t)
	f.cl.Facts.Account = sbatch.AccountFacts{Checkable: false}
	r := Check(context.Background(), f.s, f.connect)
	if !r.OK() {
		var b bytes.Buffer
		r.WriteTable(&b)
		t.Fatalf("checklist failed:\n%s", b.String())
	}
	if f.cl.Called("probe") != 1 || !f.cl.Closed() {
		t.Errorf("calls %q, closed %v: want one probe and the connection released", f.cl.Calls, f.cl.Closed())
	}
	names := map[string]bool{}
	for _, it := range r.Items {
		names[it.Name] = true
	}
	for _, want := range []string{"draft matches profile", "login node reachable", "sbatch on the login node", "account exists", "job fits the partition", "run script exists"} {
		if !names[want] {
			t.Errorf("no item %q", want)
		}
	}
}

func TestCheckJobTooBigForThePartition(t *testing.T) {
	f := newFixture(t)
	f.cl.Facts.GPUs = map[string]int{"node1": 4, "node2": 2}
	r := Check(context.Background(), f.s, f.connect)
	failed := r.Failed()
	if len(failed) != 1 || failed[0].Name != "job fits the partition" || failed[0].Kind != Submission {
		t.Fatalf("failed %+v", failed)
	}
}

func TestRunRepeatsWhyTheJobIsPending(t *testing.T) {
	f := newFixture(t)
	f.cl.Changes = []sbatch.JobState{{ID: "42", Known: true, State: "PENDING", Reason: "Resources"}}
	f.cl.States["42"] = sbatch.JobState{State: "PENDING", Reason: "Priority"}
	f.cl.Hold = make(chan struct{})
	queried := make(chan struct{})
	f.cl.OnQuery = func(id sbatch.JobID) {
		if id == "42" {
			select {
			case queried <- struct{}{}:
			default:
			}
		}
	}
	go func() {
		// Two reminders asked Slurm afresh: the second proves the first
		// was reported (it resets the reminder's clock), then release.
		<-queried
		<-queried
		close(f.cl.Hold)
	}()
	if _, err := f.run(context.Background(), Options{PendingEvery: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.log.String(), "job PENDING job=42 reason=Resources") || !strings.Contains(f.log.String(), "still PENDING job=42 reason=Priority") {
		t.Errorf("runner log:\n%s", f.log.String())
	}
}

func TestRunWarnsOfAHeldJob(t *testing.T) {
	f := newFixture(t)
	f.cl.Changes = []sbatch.JobState{
		{ID: "42", Known: true, State: "RUNNING", NodeList: "node1"},
		{ID: "42", Known: true, State: "PENDING", Reason: "launch_failed_requeued_held", Restarts: 2},
	}
	if _, err := f.run(context.Background(), Options{}); err != nil {
		t.Fatal(err)
	}
	want := `job PENDING, held: it starts only once released job=42 reason=launch_failed_requeued_held restarts=2 fix="scontrol release 42 (or scancel 42)"`
	if !strings.Contains(f.log.String(), want) {
		t.Errorf("runner log lacks %q:\n%s", want, f.log.String())
	}
}

// benchmarkLog is a job log whose benchmark printed one result block.
func benchmarkLog(outputTput float64) []byte {
	values := map[string]float64{"successful_requests": 64, "failed_requests": 0, "max_concurrency": 1}
	for _, k := range perf.CoreKeys() {
		values[k] = 100
	}
	values["output_throughput"] = outputTput
	return append([]byte(perf.FormatBlock(values)+"\n"), logWith(0)...)
}

func TestRunJudgesTheBenchmarkNumbersAgainstABaseline(t *testing.T) {
	first := newFixture(t)
	first.cl.OnSubmit = func(dir string) { first.cl.SetFile(dir+"/job-output.log", benchmarkLog(1000)) }
	if out, err := first.run(context.Background(), Options{}); err != nil || out.ExitCode != 0 {
		t.Fatalf("first run: exit %d, err %v", out.ExitCode, err)
	}
	for _, name := range []string{"perf-summary.json", "perf-summary.md", "report.html"} {
		if _, err := os.Stat(filepath.Join(first.resultsDir(), name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if !strings.Contains(first.log.String(), "perf verdict: no baseline") {
		t.Errorf("runner log:\n%s", first.log.String())
	}
	baseline := filepath.Join(first.resultsDir(), "perf-summary.json")

	// 10 % less output throughput than the baseline: a regression, which
	// fails the run only when asked to.
	for _, failOn := range []bool{false, true} {
		f := newFixture(t)
		f.s.RunID = "r2"
		f.cl.OnSubmit = func(dir string) { f.cl.SetFile(dir+"/job-output.log", benchmarkLog(900)) }
		out, err := Run(context.Background(), f.s, Options{Perf: perf.Options{Baseline: baseline}, FailOnRegression: failOn}, f.connect, f.con)
		want := map[bool]int{false: 0, true: 15}[failOn]
		if err != nil || out.ExitCode != want {
			t.Errorf("fail-on-regression %v: exit %d (%s), err %v; want %d", failOn, out.ExitCode, out.Reason, err, want)
		}
		if !strings.Contains(f.log.String(), "output_throughput") || !strings.Contains(f.log.String(), "perf verdict: regressed") {
			t.Errorf("no regression reported:\n%s", f.log.String())
		}
	}
}

// TestRunLeavesNoFolderOnWriteFailure: when the inputs cannot be written,
// the folders stage 2 created are removed again (an empty
// WORKSPACE/disagg-runner used to stay behind).
func TestRunLeavesNoFolderOnWriteFailure(t *testing.T) {
	f := newFixture(t)
	defer func(w func(string, []byte, os.FileMode) error) { writeFile = w }(writeFile)
	writeFile = func(p string, data []byte, mode os.FileMode) error {
		if filepath.Base(p) == SrunArgsName {
			return &os.PathError{Op: "write", Path: p, Err: syscall.ENOSPC}
		}
		return atomicfileWrite(p, data, mode)
	}
	_, err := f.run(context.Background(), Options{DryRun: true})
	var ws *WorkspaceError
	if !errors.As(err, &ws) {
		t.Fatalf("err %v, want a WorkspaceError", err)
	}
	if _, err := os.Stat(filepath.Join(f.s.Workspace, "disagg-runner")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stage 2 left %s behind (%v)", filepath.Join(f.s.Workspace, "disagg-runner"), err)
	}

	// A folder that was there before (an earlier attempt's) is kept.
	writeFile = atomicfileWrite
	if _, err := f.run(context.Background(), Options{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	writeFile = func(p string, data []byte, mode os.FileMode) error {
		if filepath.Base(p) == SrunArgsName {
			return &os.PathError{Op: "write", Path: p, Err: syscall.ENOSPC}
		}
		return atomicfileWrite(p, data, mode)
	}
	if _, err := f.run(context.Background(), Options{DryRun: true}); err == nil {
		t.Fatal("no error")
	}
	if _, err := os.Stat(filepath.Join(f.localDir(), LaunchName)); err != nil {
		t.Errorf("the earlier attempt's folder was removed: %v", err)
	}
}

// A local workspace that cannot take the results (a full disk) does not
// cost the verdict its evidence: the streamed log decides.
func TestRunDecidesFromTheStreamedLogWhenResultsCannotBeWritten(t *testing.T) {
	f := newFixture(t)
	f.cl.OnSubmit = func(dir string) {
		f.cl.SetFile(dir+"/job-output.log", logWith(0))
		// What stage 7 would write into is not a folder any more.
		os.RemoveAll(f.resultsDir())
		os.WriteFile(f.resultsDir(), []byte("in the way"), 0o644)
	}
	out, err := f.run(context.Background(), Options{})
	if err != nil || out.ExitCode != 0 || out.Reason != "pytest passed" {
		t.Fatalf("exit %d, err %v, reason %q", out.ExitCode, err, out.Reason)
	}
	if !strings.Contains(f.log.String(), "collecting results failed") {
		t.Errorf("the lost copy is not reported:\n%s", f.log.String())
	}
}
