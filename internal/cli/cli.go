// Package cli is the command-line layer: the only package that knows kong,
// environment variables and Jenkins. It turns flags into requests for the
// packages below and maps every error to the documented exit code.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/x/term"

	"github.com/alecthomas/kong"
	"github.com/charmbracelet/log"

	"github.com/disagg-runner/disagg-runner/internal/exitcode"
	"github.com/disagg-runner/disagg-runner/internal/termtext"
	"github.com/disagg-runner/disagg-runner/runner"
)

// Version is set at build time with -ldflags "-X .../cli.Version=...";
// without it, the commit the binary was built from (Go records it).
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	v := "dev"
	if info, ok := debug.ReadBuildInfo(); ok {
		if m := info.Main.Version; m != "" && m != "(devel)" {
			return m // a pseudo-version naming the commit, from the Go toolchain
		}
		var rev, dirty string
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && len(s.Value) >= 12:
				rev = s.Value[:12]
			case s.Key == "vcs.modified" && s.Value == "true":
				dirty = "+dirty"
			}
		}
		if rev != "" {
			v += " (" + rev + dirty + ")"
		}
	}
	return v
}

// Env is what a command may use of the process: its output streams, its
// environment and its working folder. Tests pass their own.
type Env struct {
	Stdout, Stderr io.Writer
	LookupEnv      func(string) (string, bool)
	Dir            string // relative paths are taken from here
}

// OSEnv is the real process's Env.
func OSEnv() Env {
	wd, _ := os.Getwd()
	return Env{Stdout: os.Stdout, Stderr: os.Stderr, LookupEnv: os.LookupEnv, Dir: wd}
}

// abs makes p absolute against the Env's folder ("" stays "").
func (e Env) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(e.Dir, p)
}

// childEnviron is the environment of a process the command starts (the
// checkout's generator): the process's own, except that the variables the
// generator depends on take their value from the Env (a test's may differ
// from the process's).
func (e Env) childEnviron() []string {
	names := []string{"PATH", "TRTLLM_DISAGG_CT_PRECHECK", "LLM_MODELS_ROOT", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(names, name) {
			env = append(env, kv)
		}
	}
	for _, name := range names {
		if v, ok := e.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	return env
}

// Getenv returns the variable's value, "" when unset.
func (e Env) Getenv(name string) string {
	v, _ := e.LookupEnv(name)
	return v
}

const description = "Runs a TensorRT-LLM disaggregated-serving test as one Slurm batch job and returns pytest's exit code.\n\n" + exitCodeHelp

// exitCodeHelp is shown by the top-level --help and by every command that
// can end with these codes.
const exitCodeHelp = `Exit codes:
  0        the job COMPLETED and pytest passed
  1-5      pytest's own exit code (1 tests failed, 2 interrupted, 3 internal error, 4 usage error, 5 no tests collected)
  10       a prerequisite is missing (the checklist failed)
  11       bad input: config YAML, test list, prefix, draft, command line, or the contract check failed
  12       the cluster could not be reached: connection, authentication or host key
  13       sbatch refused the job
  14       the job failed outside pytest (install failed, NODE_FAIL, OUT_OF_MEMORY, cancelled by someone else, no pytest result)
  15       with --fail-on-regression: pytest passed but a gated benchmark metric regressed against the baseline
  70       an internal error in disagg-runner (a bug: please report it with the output), or a result file whose secrets could not be masked
  124      the job hit its time limit (TIMEOUT)
  130/143  interrupted by SIGINT/SIGTERM; the job was cancelled`

// root is the command tree. Each command lives in its own file.
type root struct {
	globals

	Version  kong.VersionFlag `help:"Print the version and exit."`
	Run      runCmd           `cmd:"" help:"Run a disaggregated test: check, generate, submit, follow, collect, and exit with pytest's code."`
	Check    checkCmd         `cmd:"" help:"The pre-deployment checklist: every prerequisite and, with a cluster, the cluster side (exit 0 or 10)."`
	Generate generateCmd      `cmd:"" help:"Generate launch.sh exactly as TensorRT-LLM's submit.py does (a drop-in replacement)."`
	Attach   attachCmd        `cmd:"" help:"Follow an existing job from stage 6 on: stream its log, collect, and exit with pytest's code."`
	Status   statusCmd        `cmd:"" help:"Print a job's state once."`
	Cancel   cancelCmd        `cmd:"" help:"Cancel a job and confirm it ended."`
	Report   reportCmd        `cmd:"" help:"Print the benchmark table and performance verdict of results folders (two or more: side by side)."`
}

// globals are flags every command has.
type globals struct {
	LogFormat string `name:"log-format" env:"DISAGG_LOG_FORMAT" enum:"text,json" default:"text" help:"Format of the runner's own lines on stderr: text, or json for machines."`
	Debug     bool   `name:"debug" env:"DISAGG_DEBUG" help:"Also log each Slurm and transport step."`
}

// console makes the run's console: runner lines on stderr, the job log on stdout.
func (g *globals) console(env Env) *runner.Console {
	con := runner.NewConsole(env.Stdout, env.Stderr, g.LogFormat == "json", secrets(env))
	if g.Debug {
		con.Log.SetLevel(log.DebugLevel)
	}
	return con
}

type exitRequest struct{ code int }

// Main parses args, runs the command and returns the process exit code.
func Main(ctx context.Context, args []string, env Env) (code int) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(exitRequest); ok {
				code = e.code
				return
			}
			fmt.Fprintf(env.Stderr, "disagg-runner: internal error (a bug; please report it with this output): %v\n%s", r, debug.Stack())
			code = exitcode.InternalFailure
		}
	}()

	// Asked alone, --version is answered before the grammar is built:
	// building it allocates about 1 MB (a page fault per 4 KiB touched),
	// which is most of what the process costs otherwise. The answer is
	// the one kong gives (TestVersionFastPathMatchesKong).
	if len(args) == 1 && args[0] == "--version" {
		fmt.Fprintln(env.Stdout, version())
		return exitcode.OK
	}
	var cli root
	parser, err := kong.New(&cli,
		kong.Name("disagg-runner"),
		kong.Description(description),
		kong.UsageOnError(),
		kong.Writers(env.Stdout, env.Stderr),
		kong.Exit(func(c int) { panic(exitRequest{c}) }),
		kong.Vars{"version": version()},
		kong.BindTo(ctx, (*context.Context)(nil)),
		kong.Resolvers(envResolver(env)),
		kong.Bind(env, &cli.globals),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		panic(err)
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(env.Stderr, "disagg-runner: %s\n", termtext.OneLine(err.Error()))
		return exitcode.BadInput
	}
	res := &result{}
	err = kctx.Run(res)
	if res.many != nil && err == nil && !res.many.Ended.IsZero() {
		// Every test reached an outcome: the run's code, in the
		// documented order of seriousness (exitcode.Worst).
		return res.many.ExitCode
	}
	return report(ctx, env, &cli.globals, res.outcome, err)
}

// envResolver gives each flag the value of its environment variable as
// the Env has it (kong itself reads the process's environment, which a
// test running Main in-process does not control).
func envResolver(env Env) kong.Resolver {
	return kong.ResolverFunc(func(_ *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
		for _, name := range flag.Envs {
			if v, ok := env.LookupEnv(name); ok {
				return v, nil
			}
		}
		return nil, nil
	})
}

// result carries a run's outcome from a command back to Main, whose exit
// code it decides.
type result struct {
	outcome *runner.Outcome
	many    *runner.RunSummary // a run of several tests
}

// report prints err the way its kind deserves and returns the exit code:
// user errors as one line, bugs with everything we know. A run that
// reached its verdict has printed it already, and an interruption's own
// error says nothing the exit code does not.
func report(ctx context.Context, env Env, g *globals, out *runner.Outcome, err error) int {
	code, userError := exitCode(ctx, out, err)
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.Cause(ctx)):
	case userError:
		printError(env, g, "error", err.Error())
	default:
		fmt.Fprintf(env.Stderr, "disagg-runner: internal error (a bug; please report it with this output): %+v\n", err)
	}
	return code
}

// printError writes the one final line, as JSON when the log is JSON.
func printError(env Env, g *globals, level, msg string) {
	msg = termtext.OneLine(msg)
	if g != nil && g.LogFormat == "json" {
		b, _ := json.Marshal(map[string]string{"time": time.Now().Format(time.RFC3339), "level": level, "msg": msg})
		fmt.Fprintf(env.Stderr, "%s\n", b)
		return
	}
	fmt.Fprintf(env.Stderr, "disagg-runner: %s\n", msg)
}

func itoa(i int) string { return strconv.Itoa(i) }

// manyConsole is the console of a run of several tests, with its board on
// stdout unless a test's log is followed there. The board is live on a
// terminal; the runner's lines then scroll above it when stderr is the
// terminal too.
func (g *globals) manyConsole(env Env, follow string) (*runner.Console, *runner.Board) {
	if follow != "" {
		return g.console(env), nil
	}
	width, height, live := terminal(env.Stdout)
	board := runner.NewBoard(env.Stdout, live, width, height)
	logw := env.Stderr
	if _, _, tty := terminal(env.Stderr); live && tty {
		logw = board.Above(env.Stderr)
	}
	con := runner.NewConsole(env.Stdout, logw, g.LogFormat == "json", secrets(env))
	if g.Debug {
		con.Log.SetLevel(log.DebugLevel)
	}
	return con, board
}

// terminal reports whether w is a terminal, and its size.
func terminal(w io.Writer) (width, height int, ok bool) {
	f, isFile := w.(*os.File)
	if !isFile || !term.IsTerminal(f.Fd()) {
		return 0, 0, false
	}
	width, height, _ = term.GetSize(f.Fd())
	return width, height, true
}
