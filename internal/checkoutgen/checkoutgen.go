// Package checkoutgen runs the checkout's own generator, TensorRT-LLM's
// submit.py, with python3: for the guard against a generation
// disagg-runner does not know (`generate --compare-with-checkout` and the
// `check` item, which compare its launch.sh with ours byte for byte) and
// for `--profile checkout`, which uses its launch.sh instead of ours. It is
// the one place that starts Python; internal/launch stays pure.
package checkoutgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/launch"
)

// Profile is the profile name that selects the checkout's own generator
// (generate and run's --profile/DISAGG_PROFILE).
const Profile = "checkout"

// The generators of the two layouts, relative to the checkout.
const (
	V1Script      = "jenkins/scripts/perf/disaggregated/submit.py"
	UnifiedScript = "jenkins/scripts/perf/submit.py"
)

// Script is the generator of a generation, relative to the checkout:
// disagg-v1's own submit.py, else the unified one (perf-sanity-v2, v3 and
// whatever comes after them).
func Script(p launch.Profile) string {
	if p == launch.V1 {
		return V1Script
	}
	return UnifiedScript
}

// Request is one run of the checkout's generator: submit.py's flags, and
// where and how to run it.
type Request struct {
	// Profile is the generation whose submit.py runs (Script); disagg-v1's
	// is always given --run-ci, as our generator always works in CI mode.
	Profile launch.Profile
	// The flags, as the user gave them (relative paths are relative to
	// Dir). SplitGroup, StageName and ClusterName are passed only when set:
	// a caller leaves out what its generation does not take.
	LLMSrc, TestList, DraftLaunchSh, RunSh, InstallSh, ScriptPrefix, SrunArgs string
	SplitGroup                                                                int
	StageName, ClusterName                                                    string

	Dir string   // working folder of python3
	Env []string // its environment (nil: this process's); its PATH is where python3 is looked for
	// LaunchShName, when set, replaces the temporary launch.sh's path in the
	// generator's output (it prints where it wrote the script).
	LaunchShName string
	Timeout      time.Duration // default 2 minutes
}

// Result is what the generator wrote.
type Result struct {
	Script         []byte // the launch.sh
	Stdout, Stderr []byte
	Python         string // the python3 that ran it
	Generator      string // the submit.py, as run (relative to Dir when LLMSrc is)
}

// What is missing when the checkout's generator cannot run at all.
const (
	MissingPython    = "python3"
	MissingPyYAML    = "PyYAML"
	MissingGenerator = "generator"
)

// MissingError says that the checkout's generator cannot run here: python3
// or its PyYAML module is not installed, or the checkout has no generator
// (none at the path, or a file there that writes no launch.sh).
type MissingError struct {
	What   string // MissingPython, MissingPyYAML or MissingGenerator
	Detail string
}

func (e *MissingError) Error() string { return e.Detail }

// FailedError is the checkout's generator failing: it exited non-zero, or
// did not finish in time.
type FailedError struct {
	Generator string
	Code      int    // -1 when it was killed
	Stderr    string // what it printed on stderr
}

func (e *FailedError) Error() string {
	how := "exit " + strconv.Itoa(e.Code)
	if e.Code < 0 {
		how = "killed"
	}
	if last := LastLine(e.Stderr); last != "" {
		return fmt.Sprintf("the checkout's generator %s failed (%s): %s", e.Generator, how, last)
	}
	return fmt.Sprintf("the checkout's generator %s failed (%s) without a message", e.Generator, how)
}

// LastLine is the last non-blank line of s, trimmed: the line a Python
// traceback ends with (the exception and its message).
func LastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, " \t\r\n"), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// Args is the generator's command line after the script, writing to
// launchSh.
func (r Request) Args(launchSh string) []string {
	var a []string
	if r.Profile == launch.V1 {
		a = append(a, "--run-ci")
	}
	a = append(a, "--llm-src", r.LLMSrc, "--test-list", r.TestList, "--draft-launch-sh", r.DraftLaunchSh,
		"--launch-sh", launchSh, "--run-sh", r.RunSh, "--install-sh", r.InstallSh,
		"--script-prefix", r.ScriptPrefix, "--srun-args", r.SrunArgs)
	if r.SplitGroup != 0 {
		a = append(a, "--split-group", strconv.Itoa(r.SplitGroup))
	}
	if r.StageName != "" {
		a = append(a, "--stage-name", r.StageName)
	}
	if r.ClusterName != "" {
		a = append(a, "--cluster-name", r.ClusterName)
	}
	return a
}

// Generator is the path of the generator Run runs, as built from LLMSrc
// (relative when it is).
func (r Request) Generator() string {
	if r.LLMSrc == "" || strings.HasSuffix(r.LLMSrc, "/") {
		return r.LLMSrc + Script(r.Profile)
	}
	return r.LLMSrc + "/" + Script(r.Profile)
}

// Run runs the checkout's generator with python3 on the request's inputs,
// writing to a temporary folder, and returns the launch.sh it wrote. The
// errors are a *MissingError (it cannot run here) or a *FailedError (it
// ran and failed).
func Run(ctx context.Context, req Request) (*Result, error) {
	res := &Result{Generator: req.Generator()}
	if req.Env == nil {
		req.Env = os.Environ()
	}
	python, err := lookPath("python3", getenv(req.Env, "PATH"), req.Dir)
	if err != nil {
		return nil, &MissingError{MissingPython, "python3 not found on the PATH (the checkout's generator needs python3 with PyYAML)"}
	}
	res.Python = python
	if st, err := os.Stat(inDir(req.Dir, res.Generator)); err != nil || !st.Mode().IsRegular() {
		return nil, &MissingError{MissingGenerator, fmt.Sprintf("the checkout has no generator: %s not found", res.Generator)}
	}
	tmp, err := os.MkdirTemp("", "disagg-runner-checkout-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	launchSh := filepath.Join(tmp, "launch.sh")
	timeout := req.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(rctx, python, append([]string{res.Generator}, req.Args(launchSh)...)...)
	cmd.Dir, cmd.Env = req.Dir, req.Env
	// A python3 that is a wrapper (pyenv's shim) may leave children
	// holding the output pipes once it is killed: do not wait for them.
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	res.Stdout, res.Stderr = stdout.Bytes(), stderr.Bytes()
	if req.LaunchShName != "" {
		res.Stdout = bytes.ReplaceAll(res.Stdout, []byte(launchSh), []byte(req.LaunchShName))
		res.Stderr = bytes.ReplaceAll(res.Stderr, []byte(launchSh), []byte(req.LaunchShName))
	}
	var ee *exec.ExitError
	switch {
	case runErr == nil:
	case errors.As(runErr, &ee):
		// Only a failure costs a second python3: did the generator fail,
		// or can this python3 not run it at all?
		if err := probe(ctx, python, req); err != nil {
			return nil, err
		}
		msg := string(res.Stderr)
		if rctx.Err() != nil {
			msg += fmt.Sprintf("\nstopped after %s", timeout)
		}
		return nil, &FailedError{Generator: res.Generator, Code: ee.ExitCode(), Stderr: msg}
	default:
		return nil, fmt.Errorf("running %s %s: %w", python, res.Generator, runErr)
	}
	res.Script, err = os.ReadFile(launchSh)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &MissingError{MissingGenerator, fmt.Sprintf("%s ran but wrote no launch.sh: it is not a launch.sh generator (a placeholder?)", res.Generator)}
	}
	return res, err
}

// probeScript prints the version before importing yaml, so that a python3
// that does not run at all is told apart from one without PyYAML.
const probeScript = "import sys; print(sys.version.split()[0], flush=True); import yaml"

// probe checks that python3 runs and has PyYAML (upstream's generator
// reads the config with it).
func probe(ctx context.Context, python string, req Request) error {
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(pctx, python, "-c", probeScript)
	cmd.Dir, cmd.Env, cmd.WaitDelay = req.Dir, req.Env, 5*time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	version := strings.TrimSpace(stdout.String())
	switch {
	case err == nil:
		return nil
	case version == "":
		return &MissingError{MissingPython, fmt.Sprintf("%s does not run: %s", python, orText(LastLine(stderr.String()), err.Error()))}
	}
	return &MissingError{MissingPyYAML, fmt.Sprintf("PyYAML is not installed for %s (Python %s): %s; install it (Debian: apt-get install python3-yaml; pip: pip install pyyaml)",
		python, version, orText(LastLine(stderr.String()), err.Error()))}
}

// lookPath finds an executable file on pathList (a PATH value); an empty
// entry is the working folder, as for a shell.
func lookPath(name, pathList, dir string) (string, error) {
	for _, d := range filepath.SplitList(pathList) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, name)
		if st, err := os.Stat(inDir(dir, p)); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			if !filepath.IsAbs(p) {
				p = inDir(dir, p)
			}
			return p, nil
		}
	}
	return "", fs.ErrNotExist
}

func inDir(dir, p string) string {
	if filepath.IsAbs(p) || dir == "" {
		return p
	}
	return filepath.Join(dir, p)
}

// getenv is the last value of name in env (as the process would see it).
func getenv(env []string, name string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			v = val
		}
	}
	return v
}

func orText(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}
