package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// binary is the real disagg-runner, built once for the tests that drive it
// as users do.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "disagg-runner-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "disagg-runner")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// copyTree copies a golden case so the binary can write beside its inputs.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TRTLLM_DISAGG_CT_PRECHECK=") || strings.HasPrefix(kv, "DISAGG_PROFILE=") || strings.HasPrefix(kv, "LLM_MODELS_ROOT=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// TestGoldenThroughBinary runs `disagg-runner generate` with each golden
// case's exact arguments from inside a copy of the case folder.
func TestGoldenThroughBinary(t *testing.T) {
	root := filepath.Join("testdata", "shared", "golden")
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatalf("golden cases must be at %s: %v", root, err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		n++
		t.Run(e.Name(), func(t *testing.T) {
			t.Parallel()
			work := t.TempDir()
			copyTree(t, filepath.Join(root, e.Name()), work)
			args := strings.Split(strings.TrimRight(readFile(t, filepath.Join(work, "args")), "\n"), "\n")
			var extra []string
			for _, l := range strings.Split(readFile(t, filepath.Join(work, "env")), "\n") {
				if strings.Contains(l, "=") {
					extra = append(extra, l)
				}
			}
			launchSh := ""
			for i, a := range args {
				if a == "--launch-sh" && i+1 < len(args) {
					launchSh = filepath.Join(work, args[i+1])
				}
			}
			cmd := exec.Command(binary, append([]string{"generate"}, args...)...)
			cmd.Dir = work
			cmd.Env = cleanEnv(extra...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			runErr := cmd.Run()

			if want, err := os.ReadFile(filepath.Join(work, "expected_launch.sh")); err == nil {
				if runErr != nil {
					t.Fatalf("generate failed: %v\n%s", runErr, stderr.String())
				}
				got, err := os.ReadFile(launchSh)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("launch.sh differs from expected_launch.sh")
				}
				if !strings.Contains(stdout.String(), "Launch script generated at: ") {
					t.Errorf("no summary on stdout: %q", stdout.String())
				}
				return
			}
			wantErr := strings.TrimSpace(readFile(t, filepath.Join(work, "expected_error")))
			var exitErr *exec.ExitError
			if !errors.As(runErr, &exitErr) || exitErr.ExitCode() != 11 {
				t.Fatalf("want exit 11, got %v; stderr %q", runErr, stderr.String())
			}
			if !strings.Contains(stderr.String(), wantErr) {
				t.Fatalf("stderr %q does not contain %q", stderr.String(), wantErr)
			}
			if lines := strings.Count(strings.TrimRight(stderr.String(), "\n"), "\n"); lines != 0 {
				t.Errorf("error is %d lines, want one: %q", lines+1, stderr.String())
			}
			if _, err := os.Stat(launchSh); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s exists after an error", launchSh)
			}
			leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(launchSh), ".*tmp*"))
			if len(leftovers) > 0 {
				t.Errorf("temporary files left behind: %v", leftovers)
			}
		})
	}
	if n == 0 {
		t.Fatal("no golden cases found")
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestScripts drives the real binary from the txtar scripts in
// testdata/script (rogpeppe/go-internal's testscript).
func TestScripts(t *testing.T) {
	golden, err := filepath.Abs(filepath.Join("testdata", "shared", "golden"))
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("testdata", "script"),
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", filepath.Dir(binary)+string(os.PathListSeparator)+env.Getenv("PATH"))
			env.Setenv("GOLDEN", golden)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// cpdir copies a folder tree (golden cases into $WORK).
			"cpdir": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: cpdir SRC DST")
				}
				src, dst := ts.MkAbs(args[0]), ts.MkAbs(args[1])
				ts.Check(filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
					if err != nil {
						return err
					}
					rel, _ := filepath.Rel(src, p)
					if info.IsDir() {
						return os.MkdirAll(filepath.Join(dst, rel), 0o755)
					}
					data, err := os.ReadFile(p)
					if err != nil {
						return err
					}
					return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
				}))
			},
		},
	})
}
