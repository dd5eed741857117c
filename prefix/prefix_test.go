package prefix

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/launch"
)

func goodInputs() Inputs {
	return Inputs{
		Profile: launch.V1, ConfigName: "tc_ctx1_gen1_3nodes", TestMode: "e2e",
		Hardware:  launch.Hardware{GPUsPerNode: 4, TotalNodes: 3, TotalGPUs: 12},
		Partition: "batch", Account: "disagg", TimeLimit: "00:10:00", JobName: "disagg-tc",
		JobWorkspace: "/work/ws-1/", LLMSrcNode: "/src/trtllm", LLMData: "/data/models",
		StageName: "GB200 perf (post-merge)", DockerImage: "nvcr.io/nvidia/tensorrt-llm/release:1.1.0",
		MPIType: "pmix", TestListName: "test_list.txt", FinishedFile: "/work/ws-1/job-finished",
	}
}

func TestBuild(t *testing.T) {
	f, err := Build(goodInputs())
	if err != nil {
		t.Fatal(err)
	}
	p := string(f.ScriptPrefix)
	for _, want := range []string{
		"#SBATCH --nodes=3\n", "#SBATCH --ntasks=12\n", "#SBATCH --ntasks-per-node=4\n", "#SBATCH --gpus-per-node=4\n",
		"#SBATCH --partition=batch\n", "#SBATCH --account=disagg\n", "#SBATCH --time=00:10:00\n",
		"#SBATCH --output=/work/ws-1/job-output.log\n",
		"export jobWorkspace=/work/ws-1\n", "export stageName='GB200 perf (post-merge)'\n",
		`export pytestCommand="LLM_ROOT=/src/trtllm LLM_MODELS_ROOT=/data/models /src/trtllm/tensorrt_llm/llmapi/trtllm-llmapi-launch pytest -v --timeout=300 `,
		"--junit-xml=/work/ws-1/results.xml", "--test-list=/work/ws-1/test_list.txt\"\n",
		"trap '_rc=$?; trap \"\" TERM; printf \"%s %(%s)T\\n\" \"$_rc\" -1 > /work/ws-1/job-finished' EXIT\n",
	} {
		if !strings.Contains(p, want) {
			t.Errorf("prefix lacks %q:\n%s", want, p)
		}
	}
	if string(f.TestList) != "perf/test_perf_sanity.py::test_e2e[disagg_upload-tc_ctx1_gen1_3nodes]\n" {
		t.Errorf("test list %q", f.TestList)
	}
	if !strings.Contains(string(f.SrunArgs), "--container-image=nvcr.io#nvidia/tensorrt-llm/release:1.1.0\n") ||
		!strings.Contains(string(f.SrunArgs), "--mpi=pmix\n") ||
		!strings.Contains(string(f.SrunArgs), "--container-mounts=/work/ws-1:/work/ws-1,/src/trtllm:/src/trtllm,/data/models:/data/models:ro\n") {
		t.Errorf("srun args %q", f.SrunArgs)
	}
	// The prefix must be valid bash on its own.
	path := filepath.Join(t.TempDir(), "prefix.sh")
	os.WriteFile(path, f.ScriptPrefix, 0o644)
	if out, err := exec.Command("bash", "-n", path).CombinedOutput(); err != nil {
		t.Errorf("bash -n: %v %s", err, out)
	}

	in := goodInputs()
	in.Profile, in.TestMode = launch.V2, "gen_only"
	f, err = Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(f.SrunArgs), "--mpi") {
		t.Error("v2 srun args carry --mpi; v2 drafts set it on the worker steps")
	}
	if !strings.Contains(f.TestID, "[disagg_upload-gen_only-tc_ctx1_gen1_3nodes]") {
		t.Errorf("v2 test id %q", f.TestID)
	}
}

// exitTrap is the prefix's EXIT trap line for in.
func exitTrap(t *testing.T, in Inputs) string {
	t.Helper()
	f, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.Lines(string(f.ScriptPrefix)) {
		if strings.HasPrefix(l, "trap ") && strings.HasSuffix(l, " EXIT\n") {
			return l
		}
	}
	t.Fatalf("no EXIT trap in\n%s", f.ScriptPrefix)
	return ""
}

// TestFinishedTrap runs the prefix's EXIT trap in bash: it writes
// "<rc> <epoch>" on a plain exit and on SIGTERM (scancel), and it runs no
// external command (PATH leads nowhere): no fork widens the window in
// which the job's own scancel can kill bash inside the trap.
func TestFinishedTrap(t *testing.T) {
	dir := t.TempDir()
	in := goodInputs()
	in.FinishedFile = filepath.Join(dir, "job-finished")
	trap := exitTrap(t, in)
	for _, c := range []struct{ body, rc string }{
		{"exit 3", "3"},
		{"true", "0"},
		// $? is then the last command's status, which bash leaves as it
		// was: any number will do, the write is what counts.
		{"kill -TERM $$; while :; do :; done", ""},
	} {
		os.Remove(in.FinishedFile)
		before := time.Now().Unix()
		cmd := exec.Command("bash", "-c", trap+c.body)
		cmd.Env = []string{"PATH=/nonexistent"}
		out, _ := cmd.CombinedOutput()
		got, err := os.ReadFile(in.FinishedFile)
		if err != nil {
			t.Fatalf("%s: %v (bash said %q)", c.body, err, out)
		}
		rc, epoch, ok := strings.Cut(strings.TrimSuffix(string(got), "\n"), " ")
		sec, perr := strconv.ParseInt(epoch, 10, 64)
		_, rcErr := strconv.Atoi(rc)
		if !ok || rcErr != nil || c.rc != "" && rc != c.rc || perr != nil || sec < before || sec > time.Now().Unix() {
			t.Errorf("%s: sentinel %q, want %q and an epoch from now (bash said %q)", c.body, got, c.rc+" <epoch>", out)
		}
	}
}

// TestFinishedTrapIgnoresTERM holds the trap in its write, the sentinel
// being a FIFO nobody reads yet, and sends SIGTERM there, as the job's
// own scancel can: bash must not die before the write (CI lost a sentinel
// that way). The signal must find TERM ignored; the write then completes
// once a reader comes, and the script keeps its exit code.
func TestFinishedTrapIgnoresTERM(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "job-finished")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	in := goodInputs()
	in.FinishedFile = fifo
	cmd := exec.Command("bash", "-c", exitTrap(t, in)+"exit 3")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	proc := fmt.Sprintf("/proc/%d/", cmd.Process.Pid)

	// Opening a FIFO to write waits in the kernel until a reader opens
	// it: the trap is then inside its write.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if w, _ := os.ReadFile(proc + "wchan"); string(w) == "wait_for_partner" {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("bash exited (%v) before the trap's write", err)
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("bash never reached the trap's write")
		}
	}
	status, err := os.ReadFile(proc + "status")
	if err != nil {
		t.Fatal(err)
	}
	var ignored uint64
	for l := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(l, "SigIgn:"); ok {
			ignored, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if ignored&(1<<(syscall.SIGTERM-1)) == 0 {
		t.Errorf("SIGTERM is not ignored while the trap writes (SigIgn %x)", ignored)
	}
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(fifo)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	err = <-exited
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.HasPrefix(string(got), "3 ") {
		t.Errorf("bash ended with %v and wrote %q, want exit 3 and \"3 <epoch>\"", err, got)
	}
}

func TestBuildRefusesInjection(t *testing.T) {
	cases := []struct {
		edit func(*Inputs)
		want string
	}{
		{func(i *Inputs) { i.Partition = "batch\n#SBATCH --uid=0" }, FieldPartition},
		{func(i *Inputs) { i.Account = "a b" }, FieldAccount},
		{func(i *Inputs) { i.TimeLimit = "2 hours" }, FieldTimeLimit},
		{func(i *Inputs) { i.JobWorkspace = "/ws/$(reboot)" }, FieldClusterWork},
		{func(i *Inputs) { i.JobWorkspace = "relative/ws" }, FieldClusterWork},
		{func(i *Inputs) { i.LLMData = "/data models" }, FieldModelsRoot},
		{func(i *Inputs) { i.LLMSrcNode = "/src;rm -rf /" }, FieldNodeCheckout},
		{func(i *Inputs) { i.DockerImage = "img:1 --privileged" }, FieldImage},
		{func(i *Inputs) { i.StageName = `x"; reboot; "` }, FieldStageName},
		{func(i *Inputs) { i.StageName = "x $(reboot)" }, FieldStageName},
		{func(i *Inputs) { i.MPIType = "pmix --overlap" }, FieldMPIType},
		{func(i *Inputs) { i.ConfigName = "../etc" }, FieldConfig},
		{func(i *Inputs) { i.PytestCommand = `pytest "; reboot; "` }, FieldPytestCommand},
		{func(i *Inputs) { i.PytestCommand = "pytest $(reboot)" }, FieldPytestCommand},
		{func(i *Inputs) { i.PytestCommand = "pytest `reboot`" }, FieldPytestCommand},
		{func(i *Inputs) { i.PytestCommand = "pytest; reboot" }, FieldPytestCommand},
		// A variable it names is pasted in when launch.sh runs and then
		// eval'ed: only inert ones, and only as $name or ${name}.
		{func(i *Inputs) { i.PytestCommand = "pytest -v $stageName" }, FieldPytestCommand},
		{func(i *Inputs) { i.PytestCommand = "pytest -v ${HOME}/x" }, FieldPytestCommand},
		{func(i *Inputs) { i.PytestCommand = "pytest ${x:=a}" }, FieldPytestCommand},
		{func(i *Inputs) { i.PytestCommand = "pytest ${!x}" }, FieldPytestCommand},
		{func(i *Inputs) { i.PytestCommand = "pytest ${PATH@P}" }, FieldPytestCommand},
		{func(i *Inputs) { i.PytestCommand = "pytest $((1+1))" }, FieldPytestCommand},
		{func(i *Inputs) { i.PytestCommand = "pytest $" }, FieldPytestCommand},
		{func(i *Inputs) { i.PytestCommand = "pytest ${jobWorkspace" }, FieldPytestCommand},
	}
	for _, c := range cases {
		in := goodInputs()
		c.edit(&in)
		_, err := Build(in)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Name != c.want {
			t.Errorf("%+v: error %v, want one naming %s", in, err, c.want)
		}
	}
	in := goodInputs()
	in.StageName = "GB200 perf [2 nodes] #1 & 'more'"
	if f, err := Build(in); err != nil {
		t.Errorf("a Jenkins stage name was refused: %v", err)
	} else if want := `export stageName='GB200 perf [2 nodes] #1 & '\''more'\'''`; !strings.Contains(string(f.ScriptPrefix), want) {
		t.Errorf("stage name not quoted as %s:\n%s", want, f.ScriptPrefix)
	}
	in = goodInputs()
	in.PytestCommand = "STANDIN_EXIT=1 ${llmSrcNode}/bin/pytest -v --junit-xml=$jobWorkspace/results.xml"
	if _, err := Build(in); err != nil {
		t.Errorf("a plain replacement command was refused: %v", err)
	}
}

func TestEnrootImage(t *testing.T) {
	for in, want := range map[string]string{
		"nvcr.io/nvidia/tensorrt-llm/release:1.1.0": "nvcr.io#nvidia/tensorrt-llm/release:1.1.0",
		"registry:5000/img:tag":                     "registry:5000#img:tag",
		"localhost/img":                             "localhost#img",
		"nvcr.io#nvidia/x:1":                        "nvcr.io#nvidia/x:1",
		"ubuntu:22.04":                              "ubuntu:22.04",
		"library/ubuntu:22.04":                      "library/ubuntu:22.04",
	} {
		if got := EnrootImage(in); got != want {
			t.Errorf("EnrootImage(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLimitSeconds(t *testing.T) {
	for in, want := range map[string]int{"90": 5400, "10:30": 630, "02:00:00": 7200, "1-00": 86400, "1-02:03": 93780, "1-0:0:5": 86405, "UNLIMITED": 0} {
		if got, err := LimitSeconds(in); err != nil || got != want {
			t.Errorf("LimitSeconds(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := LimitSeconds("2h"); err == nil {
		t.Error("2h accepted")
	}
	// The largest accepted: 365 days, however written.
	for _, in := range []string{"525600", "8760:00:00", "365-00", "364-23:59:59", "525600:00", "0", "00:00:00", "infinite", "1:59"} {
		if _, err := LimitSeconds(in); err != nil {
			t.Errorf("LimitSeconds(%q): %v", in, err)
		}
	}
}

// TestLimitSecondsStrict: a limit Slurm would misread, or one that
// overflowed into a negative pytest timeout (the default 3600 was then
// used silently), is refused.
func TestLimitSecondsStrict(t *testing.T) {
	for _, in := range []string{
		"99999999999999999999", "9223372036854775807", "525601", "366-00", "365-00:00:01", "8760:00:01",
		"25:99:99", "10:60", "1:60:00", "1:00:60", "1-24", "1-24:00", "1-23:60", "1-0:0:60",
		"", "-1", "+5", " 90", "90 ", "1-", "1--2", "1:2:3:4", "1-2:3:4:5", "١٢", "0x10", "1_000", "Unlimited ",
	} {
		if secs, err := LimitSeconds(in); err == nil {
			t.Errorf("LimitSeconds(%q) = %d, want a refusal", in, secs)
		}
		bad := goodInputs()
		bad.TimeLimit = in
		var ve *ValidationError
		if _, err := Build(bad); !errors.As(err, &ve) || ve.Name != FieldTimeLimit {
			t.Errorf("Build with time limit %q: %v, want a time limit error", in, err)
		}
	}
}
