package checkoutgen

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/launch"
)

func TestCompare(t *testing.T) {
	cases := []struct {
		name, ours, theirs string
		want               *Difference
	}{
		{"identical", "a\nb\n", "a\nb\n", nil},
		{"identical without final newline", "a\nb", "a\nb", nil},
		{"a changed line", "a\nbcd\ne", "a\nbXd\ne", &Difference{Line: 2, Column: 2, Ours: "bcd", Theirs: "bXd"}},
		{"theirs is shorter", "a\nb\nc", "a\nb\n", &Difference{Line: 3, Ours: "c", OursNoNewline: true, TheirsMissing: true}},
		{"ours is shorter", "a\n", "a\nb\n", &Difference{Line: 2, OursMissing: true, Theirs: "b"}},
		{"only the final newline", "a\nb\n", "a\nb", &Difference{Line: 2, Column: 2, Ours: "b", Theirs: "b", TheirsNoNewline: true}},
		{"carriage return", "a\r\n", "a\n", &Difference{Line: 1, Column: 2, Ours: "a\r", Theirs: "a"}},
		{"column counts characters", "é x\n", "é y\n", &Difference{Line: 1, Column: 3, Ours: "é x", Theirs: "é y"}},
		{"empty against something", "", "a", &Difference{Line: 1, OursMissing: true, Theirs: "a", TheirsNoNewline: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Compare([]byte(c.ours), []byte(c.theirs))
			switch {
			case got == nil && c.want == nil:
			case got == nil || c.want == nil || *got != *c.want:
				t.Fatalf("Compare(%q, %q) = %+v, want %+v", c.ours, c.theirs, got, c.want)
			}
		})
	}
}

func TestDifferenceFormat(t *testing.T) {
	d := Compare([]byte("#!/bin/bash\nexport a=1\n"), []byte("#!/bin/bash\nexport a=2\n"))
	got := d.Format("disagg-runner", "submit.py")
	want := "first difference at line 2, column 10:\n" +
		"  disagg-runner 2: export a=1\n" +
		"  submit.py     2: export a=2\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	d = Compare([]byte("x\n"), []byte("x\ny"))
	got = d.Format("ours", "theirs")
	for _, s := range []string{"first difference at line 2:", "ours   2: (no such line: the file has 1 lines)", "theirs 2: y   (no newline at the end of the file)"} {
		if !strings.Contains(got, s) {
			t.Errorf("%q not in\n%s", s, got)
		}
	}
}

func TestArgs(t *testing.T) {
	r := Request{Profile: launch.V1, LLMSrc: "trtllm", TestList: "t", DraftLaunchSh: "d", RunSh: "/r", InstallSh: "/i", ScriptPrefix: "p", SrunArgs: "s"}
	if got, want := strings.Join(r.Args("/tmp/x/launch.sh"), " "), "--run-ci --llm-src trtllm --test-list t --draft-launch-sh d --launch-sh /tmp/x/launch.sh --run-sh /r --install-sh /i --script-prefix p --srun-args s"; got != want {
		t.Errorf("v1 args:\n%s\nwant\n%s", got, want)
	}
	if got := r.Generator(); got != "trtllm/jenkins/scripts/perf/disaggregated/submit.py" {
		t.Errorf("v1 generator %s", got)
	}
	r.Profile, r.SplitGroup, r.StageName, r.ClusterName, r.LLMSrc = launch.V3, 2, "GB200 x", "gcp-nrt", "/src/"
	got := strings.Join(r.Args("L"), " ")
	if strings.Contains(got, "--run-ci") || !strings.HasSuffix(got, "--split-group 2 --stage-name GB200 x --cluster-name gcp-nrt") {
		t.Errorf("v3 args: %s", got)
	}
	if got := r.Generator(); got != "/src/jenkins/scripts/perf/submit.py" {
		t.Errorf("v3 generator %s", got)
	}
}

// fakePython writes an executable python3 (a shell script) into a new
// folder and returns the folder, for a PATH.
func fakePython(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "python3"), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkout makes a checkout with a generator file at the v3 path.
func checkout(t *testing.T, generator string) (dir string, req Request) {
	t.Helper()
	dir = t.TempDir()
	if generator != "" {
		p := filepath.Join(dir, "trtllm", UnifiedScript)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(generator), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, Request{Profile: launch.V3, LLMSrc: "trtllm", TestList: "t", DraftLaunchSh: "d", RunSh: "/r", InstallSh: "/i",
		ScriptPrefix: "p", SrunArgs: "s", Dir: dir}
}

func TestRunMissing(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	pyOK := "case \"$1\" in -c) echo 3.11.2; exit 0;; esac\nexit 0\n"
	cases := []struct {
		name, path, generator, what, msg string
	}{
		{"no python3", "", "# gen", MissingPython, "python3 not found on the PATH"},
		{"python3 does not run", "fake:echo 'pyenv: python3: command not found' >&2; exit 127\n", "# gen", MissingPython, "does not run: pyenv: python3: command not found"},
		{"no PyYAML", "fake:echo 3.11.2; echo \"ModuleNotFoundError: No module named 'yaml'\" >&2; exit 1\n", "# gen", MissingPyYAML, "PyYAML is not installed for"},
		{"no generator", "fake:" + pyOK, "", MissingGenerator, "the checkout has no generator: trtllm/jenkins/scripts/perf/submit.py not found"},
		{"a placeholder", "fake:" + pyOK, "# placeholder", MissingGenerator, "trtllm/jenkins/scripts/perf/submit.py ran but wrote no launch.sh"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, req := checkout(t, c.generator)
			path := filepath.Join(dir, "empty")
			os.Mkdir(path, 0o755)
			if body, ok := strings.CutPrefix(c.path, "fake:"); ok {
				path = fakePython(t, body)
			}
			req.Env = []string{"PATH=" + path}
			_, err := Run(context.Background(), req)
			var me *MissingError
			if !errors.As(err, &me) || me.What != c.what || !strings.Contains(me.Error(), c.msg) {
				t.Fatalf("got %v, want missing %s: %q", err, c.what, c.msg)
			}
		})
	}
}

func TestRunFails(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	dir, req := checkout(t, "# gen")
	py := fakePython(t, "case \"$1\" in -c) echo 3.11.2; exit 0;; esac\necho 'Traceback (most recent call last):' >&2\necho 'ValueError: Invalid test list format' >&2\nexit 1\n")
	req.Env = []string{"PATH=" + py}
	_, err := Run(context.Background(), req)
	var fe *FailedError
	if !errors.As(err, &fe) || fe.Code != 1 {
		t.Fatalf("got %v, want a failure with exit 1", err)
	}
	if want := "the checkout's generator trtllm/jenkins/scripts/perf/submit.py failed (exit 1): ValueError: Invalid test list format"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	_ = dir
}

// TestRunFake runs a generator through a fake python3 that plays it: the
// script is found relative to Dir, gets the flags, and its launch.sh and
// output come back with the temporary path replaced.
func TestRunFake(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	_, req := checkout(t, "# gen")
	py := fakePython(t, `case "$1" in -c) echo 3.12.1; exit 0;; esac
script=$1; shift
[ -f "$script" ] || { echo "no $script in $PWD" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case $1 in --launch-sh) out=$2; shift;; esac
	shift
done
printf 'generated by %s\n' "$script" > "$out"
echo "Launch script generated at: $out"
`)
	req.Env = []string{"PATH=" + py}
	req.LaunchShName = "my/launch.sh"
	res, err := Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Script) != "generated by trtllm/jenkins/scripts/perf/submit.py\n" {
		t.Errorf("script %q", res.Script)
	}
	if string(res.Stdout) != "Launch script generated at: my/launch.sh\n" {
		t.Errorf("stdout %q", res.Stdout)
	}
	if res.Python != filepath.Join(py, "python3") {
		t.Errorf("python %s", res.Python)
	}
}

// TestRunReal runs the stand-in generator (testdata/checkout-generator)
// with the real python3, where one with PyYAML is installed.
func TestRunReal(t *testing.T) {
	if err := exec.Command("python3", "-c", "import yaml").Run(); err != nil {
		t.Skip("no python3 with PyYAML here")
	}
	src, err := os.ReadFile(filepath.Join("..", "..", "testdata", "checkout-generator", "submit.py"))
	if err != nil {
		t.Fatal(err)
	}
	dir, req := checkout(t, string(src))
	os.WriteFile(filepath.Join(dir, "trtllm", "jenkins/scripts/perf/standin_launch.sh"), []byte("#!/bin/bash\necho hi"), 0o644)
	req.Env = append(os.Environ(), "TRTLLM_DISAGG_CT_PRECHECK=off")
	req.StageName = "stage one"
	res, err := Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Script) != "#!/bin/bash\necho hi" {
		t.Errorf("script %q", res.Script)
	}
	argv, _ := os.ReadFile(filepath.Join(dir, "trtllm", "jenkins/scripts/perf/standin_argv.json"))
	for _, s := range []string{`"--stage-name", "stage one"`, `"--llm-src", "trtllm"`, `"TRTLLM_DISAGG_CT_PRECHECK": "off"`} {
		if !strings.Contains(string(argv), s) {
			t.Errorf("%s not in %s", s, argv)
		}
	}
	os.WriteFile(filepath.Join(dir, "trtllm", "jenkins/scripts/perf/standin_exit"), []byte("3 boom: bad config"), 0o644)
	_, err = Run(context.Background(), req)
	var fe *FailedError
	if !errors.As(err, &fe) || fe.Code != 3 || !strings.HasSuffix(err.Error(), "(exit 3): boom: bad config") {
		t.Errorf("got %v", err)
	}
}

// TestRunTimeout: a generator that hangs is stopped and reported as
// failed, not waited for.
func TestRunTimeout(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	_, req := checkout(t, "# gen")
	py := fakePython(t, "case \"$1\" in -c) echo 3.11.2; exit 0;; esac\nexec sleep 30\n")
	req.Env = []string{"PATH=" + py + ":/usr/bin:/bin"}
	req.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := Run(context.Background(), req)
	var fe *FailedError
	if !errors.As(err, &fe) || fe.Code != -1 || !strings.Contains(fe.Stderr, "stopped after 300ms") {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s", d)
	}
}
