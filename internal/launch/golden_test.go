package launch

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// goldenDir is the project's copy of the shared golden cases.
func goldenDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "testdata", "shared", "golden"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("golden cases not found at %s (scripts/refresh-shared makes the copy): %v", dir, err)
	}
	return dir
}

type goldenCase struct {
	name, dir string
	req       Request
	env       map[string]string
	want      []byte // expected_launch.sh, nil for an error case
	wantErr   string
}

// loadGoldenCases discovers every case folder; adding a case needs no code.
func loadGoldenCases(t testing.TB) []goldenCase {
	root := goldenDir(t)
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var cases []goldenCase
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		c := goldenCase{name: e.Name(), dir: dir, env: map[string]string{}}
		args := strings.Split(strings.TrimRight(string(mustRead(t, filepath.Join(dir, "args"))), "\n"), "\n")
		flags := map[string]string{}
		for i := 0; i < len(args); i++ {
			if args[i] == "--run-ci" {
				continue
			}
			if i+1 >= len(args) {
				t.Fatalf("%s: flag %s has no value", e.Name(), args[i])
			}
			flags[args[i]] = args[i+1]
			i++
		}
		for _, l := range strings.Split(string(mustRead(t, filepath.Join(dir, "env"))), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				c.env[k] = v
			}
		}
		split := 0
		if s, ok := flags["--split-group"]; ok {
			if split, err = strconv.Atoi(s); err != nil {
				t.Fatalf("%s: --split-group %q", e.Name(), s)
			}
		}
		c.req = Request{
			LLMSrc:       flags["--llm-src"],
			TestListPath: flags["--test-list"],
			DraftPath:    flags["--draft-launch-sh"],
			PrefixPath:   flags["--script-prefix"],
			SrunArgsPath: flags["--srun-args"],
			RunSh:        flags["--run-sh"],
			InstallSh:    flags["--install-sh"],
			SplitGroup:   split,
			StageName:    flags["--stage-name"],
			ClusterName:  flags["--cluster-name"],
		}
		if v, ok := c.env["TRTLLM_DISAGG_CT_PRECHECK"]; ok {
			c.req.PrecheckSwitch = &v
		}
		c.req.ModelsRootEnv = c.env["LLM_MODELS_ROOT"]
		c.req.Profile = Detect(c.req.LLMSrc, func(p string) bool { return isRegular(filepath.Join(dir, p)) },
			func(p string) bool { return isDirectory(filepath.Join(dir, p)) })
		if want := strings.TrimSpace(string(mustRead(t, filepath.Join(dir, "profile")))); string(c.req.Profile) != want {
			t.Errorf("%s: detected profile %s, the case says %s", e.Name(), c.req.Profile, want)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "expected_launch.sh")); err == nil {
			c.want = b
		} else if b, err := os.ReadFile(filepath.Join(dir, "expected_error")); err == nil {
			c.wantErr = strings.TrimSpace(string(b))
		} else {
			t.Fatalf("%s: neither expected_launch.sh nor expected_error", e.Name())
		}
		cases = append(cases, c)
	}
	if len(cases) == 0 {
		t.Fatal("no golden cases found")
	}
	return cases
}

func (c goldenCase) read(p string) ([]byte, error) {
	if !filepath.IsAbs(p) {
		p = filepath.Join(c.dir, p)
	}
	return os.ReadFile(p)
}

func TestGolden(t *testing.T) {
	for _, c := range loadGoldenCases(t) {
		t.Run(c.name, func(t *testing.T) {
			res, err := Generate(c.req, c.read)
			if c.wantErr != "" {
				if err == nil {
					t.Fatalf("want an error containing %q, got none", c.wantErr)
				}
				if !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %q does not contain %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error spans several lines: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(res.Script, c.want) {
				t.Fatalf("output differs from expected_launch.sh:\n%s", firstDiff(res.Script, c.want))
			}
			if len(res.Contract) > 0 {
				t.Errorf("contract check flags a golden draft: %v", res.Contract)
			}
		})
	}
}

// TestGoldenBashSyntax runs bash -n on every expected launch script.
func TestGoldenBashSyntax(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash not found")
	}
	for _, c := range loadGoldenCases(t) {
		if c.want == nil {
			continue
		}
		out, err := exec.Command(bash, "-n", filepath.Join(c.dir, "expected_launch.sh")).CombinedOutput()
		if err != nil {
			t.Errorf("%s: bash -n: %v\n%s", c.name, err, out)
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	for _, c := range loadGoldenCases(b) {
		if c.want == nil {
			continue
		}
		// Read the inputs once, so that the benchmark measures generation.
		files := map[string][]byte{}
		read := func(p string) ([]byte, error) {
			if d, ok := files[p]; ok {
				return d, nil
			}
			d, err := c.read(p)
			if err == nil {
				files[p] = d
			}
			return d, err
		}
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := Generate(c.req, read); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func firstDiff(got, want []byte) string {
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(gl) || i < len(wl); i++ {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w || i >= len(gl) || i >= len(wl) {
			return "line " + strconv.Itoa(i+1) + ":\n got:  " + strconv.Quote(g) + "\n want: " + strconv.Quote(w)
		}
	}
	return "(no line differs; lengths " + strconv.Itoa(len(got)) + " vs " + strconv.Itoa(len(want)) + ")"
}

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func isRegular(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func isDirectory(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
