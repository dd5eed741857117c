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
	"runtime/debug"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/charmbracelet/log"

	"github.com/disagg-runner/disagg-runner/internal/exitcode"
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

// Env is what a command may use of the process: its output streams and
// environment. Tests pass their own.
type Env struct {
	Stdout, Stderr io.Writer
	LookupEnv      func(string) (string, bool)
}

// OSEnv is the real process's Env.
func OSEnv() Env { return Env{Stdout: os.Stdout, Stderr: os.Stderr, LookupEnv: os.LookupEnv} }

// Getenv returns the variable's value, "" when unset.
func (e Env) Getenv(name string) string {
	v, _ := e.LookupEnv(name)
	return v
}

// SignalError is the cancellation cause of a run stopped by a signal.
type SignalError struct{ Signal os.Signal }

func (s SignalError) Error() string { return "interrupted by " + s.Signal.String() }

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
  70       an internal error in disagg-runner (a bug: please report it with the output)
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

	var cli root
	parser, err := kong.New(&cli,
		kong.Name("disagg-runner"),
		kong.Description(description),
		kong.UsageOnError(),
		kong.Writers(env.Stdout, env.Stderr),
		kong.Exit(func(c int) { panic(exitRequest{c}) }),
		kong.Vars{"version": version()},
		kong.BindTo(ctx, (*context.Context)(nil)),
		kong.Bind(env, &cli.globals),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		panic(err)
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(env.Stderr, "disagg-runner: %s\n", oneLine(err.Error()))
		return exitcode.BadInput
	}
	err = kctx.Run()
	return report(ctx, env, &cli.globals, err)
}

// report prints err the way its kind deserves and returns the exit code:
// user errors as one line, bugs with everything we know. A run stopped by
// a signal exits 130/143 whatever error the interruption caused.
func report(ctx context.Context, env Env, g *globals, err error) int {
	var sig SignalError
	if errors.As(context.Cause(ctx), &sig) {
		if err != nil && !errors.Is(err, context.Canceled) && !errors.As(err, &sig) && !exitcode.WasShown(err) {
			printError(env, g, "error", err.Error())
		}
		return exitcode.ForSignal(sig.Signal)
	}
	if err == nil {
		return exitcode.OK
	}
	code := exitcode.Of(err)
	switch {
	case exitcode.WasShown(err):
	case exitcode.IsUserError(err):
		printError(env, g, "error", err.Error())
	default:
		fmt.Fprintf(env.Stderr, "disagg-runner: internal error (a bug; please report it with this output): %+v\n", err)
	}
	return code
}

// printError writes the one final line, as JSON when the log is JSON.
func printError(env Env, g *globals, level, msg string) {
	msg = oneLine(msg)
	if g != nil && g.LogFormat == "json" {
		b, _ := json.Marshal(map[string]string{"time": time.Now().Format(time.RFC3339), "level": level, "msg": msg})
		fmt.Fprintf(env.Stderr, "%s\n", b)
		return
	}
	fmt.Fprintf(env.Stderr, "disagg-runner: %s\n", msg)
}

// oneLine folds an error onto one line: CI logs are grepped line by line.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(strings.TrimSpace(s))
}

// ExitCode is the code a run stopped by this signal exits with.
func (s SignalError) ExitCode() int { return exitcode.ForSignal(s.Signal) }
