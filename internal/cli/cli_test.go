package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/alecthomas/kong"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/disagg-runner/disagg-runner/internal/lazyre"
)

// TestScripts drives the command line in-process through Main, from the
// txtar scenarios in testdata/script: help, flags and their environment
// variables, exit codes, --dry-run, generate, and check without a
// cluster. `disagg-runner ARGS` runs Main in the script's folder with the
// script's environment; `code N` asserts the last exit code. $CHECKOUT_V1,
// $CHECKOUT_V2 and $CHECKOUT_V3 are the stand-in checkouts, $STANDIN_SUBMIT
// our stand-in for a checkout's own submit.py, $ORIG_PATH the PATH before
// a script changes it; the condition [pyyaml] holds
// where python3 with PyYAML is installed.
func TestScripts(t *testing.T) {
	testdata := func(p string) string {
		abs, err := filepath.Abs(filepath.Join("..", "..", "testdata", p))
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	golden := testdata(filepath.Join("shared", "golden"))
	pyyaml := exec.Command("python3", "-c", "import yaml").Run() == nil
	// kong applies the process's own variables before Main's resolver
	// sees the script's: none of the flags' variables may leak in from
	// the environment the tests run in (scripts/test exports the test
	// cluster's).
	for _, name := range flagEnvNames(t) {
		if v, ok := os.LookupEnv(name); ok {
			t.Setenv(name, v) // restored after the test
			os.Unsetenv(name)
		}
	}
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("testdata", "script"),
		Setup: func(env *testscript.Env) error {
			for _, v := range []string{"v1", "v2", "v3"} {
				env.Setenv("CHECKOUT_"+strings.ToUpper(v), testdata("trtllm-"+v))
			}
			env.Setenv("STANDIN_SUBMIT", testdata(filepath.Join("checkout-generator", "submit.py")))
			env.Setenv("GOLDEN", golden)
			env.Setenv("ORIG_PATH", env.Getenv("PATH"))
			return nil
		},
		Condition: func(cond string) (bool, error) {
			if cond == "pyyaml" {
				return pyyaml, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"disagg-runner": runMain,
			"code": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: code N")
				}
				if got := ts.Getenv("LAST_EXIT"); (got == args[0]) == neg {
					ts.Fatalf("exit code %s, want %s%s", got, map[bool]string{true: "not "}[neg], args[0])
				}
			},
			"cpdir":   cpdir,
			"mkfifo":  mkfifo,
			"envfile": envfile,
		},
	})
}

// flagEnvNames are the environment variables of every flag.
func flagEnvNames(t *testing.T) []string {
	parser, err := kong.New(&root{}, kong.Vars{"version": "test"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	kong.Visit(parser.Model, func(n kong.Visitable, next kong.Next) error {
		if f, ok := n.(*kong.Flag); ok {
			names = append(names, f.Envs...)
		}
		return next(nil)
	})
	if len(names) < 20 {
		t.Fatalf("only %d flag variables found: %q", len(names), names)
	}
	return names
}

func runMain(ts *testscript.TestScript, neg bool, args []string) {
	env := Env{
		Stdout: ts.Stdout(),
		Stderr: ts.Stderr(),
		LookupEnv: func(name string) (string, bool) {
			v := ts.Getenv(name)
			return v, v != ""
		},
		Dir: ts.MkAbs("."),
	}
	code := Main(context.Background(), args, env)
	ts.Setenv("LAST_EXIT", strconv.Itoa(code))
	if (code != 0) != neg {
		ts.Fatalf("disagg-runner exited %d", code)
	}
}

// envfile sets a variable to a file's content without its final line
// break: values a script cannot spell (line breaks, control bytes).
func envfile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: envfile NAME FILE")
	}
	ts.Setenv(args[0], strings.TrimSuffix(ts.ReadFile(args[1]), "\n"))
}

// mkfifo makes named pipes, which nothing ever writes to: reading one
// would block forever.
func mkfifo(ts *testscript.TestScript, neg bool, args []string) {
	for _, a := range args {
		ts.Check(syscall.Mkfifo(ts.MkAbs(a), 0o644))
	}
}

// cpdir copies a folder tree (a stand-in checkout, a golden case).
func cpdir(ts *testscript.TestScript, neg bool, args []string) {
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
		return os.WriteFile(filepath.Join(dst, rel), data, info.Mode().Perm())
	}))
}

// The --version fast path says what kong's version flag says, with the
// same exit code, and kong still answers --version among other words.
func TestVersionFastPathMatchesKong(t *testing.T) {
	var fast, slow strings.Builder
	env := Env{Stdout: &fast, Stderr: &fast, LookupEnv: func(string) (string, bool) { return "", false }, Dir: t.TempDir()}
	if code := Main(context.Background(), []string{"--version"}, env); code != 0 {
		t.Fatalf("--version exited %d", code)
	}
	env.Stdout, env.Stderr = &slow, &slow
	// Not alone, so kong parses it: its version flag exits before the
	// command is looked at.
	if code := Main(context.Background(), []string{"--version", "status"}, env); code != 0 {
		t.Fatalf("--version status exited %d: %s", code, slow.String())
	}
	if fast.String() == "" || fast.String() != slow.String() {
		t.Errorf("fast path printed %q, kong %q", fast.String(), slow.String())
	}
}

// Every package's patterns are compiled on first use (lazyre); here they
// are all compiled at once, so a bad one fails a test instead of the first
// run that reaches it.
func TestEveryPatternCompiles(t *testing.T) {
	if n := lazyre.Count(); n < 20 {
		t.Fatalf("only %d patterns registered: is a package that uses lazyre not linked into the command?", n)
	}
	if err := lazyre.CompileAll(); err != nil {
		t.Fatal(err)
	}
}
