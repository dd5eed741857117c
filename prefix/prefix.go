// Package prefix writes the three inputs that the Jenkins side used to
// prepare for submit.py: the test list, the script prefix (#SBATCH
// directives and exports) and the srun arguments. It is pure: values in,
// bytes out. Every value that lands in shell is validated or quoted here,
// because the generated script is later run (and pytestCommand eval'ed)
// on the cluster.
package prefix

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/disagg-runner/disagg-runner/internal/launch"
	"github.com/disagg-runner/disagg-runner/internal/lazyre"
	"github.com/disagg-runner/disagg-runner/internal/shellquote"
)

// Inputs are the values the three files are made of.
type Inputs struct {
	Profile    launch.Profile
	ConfigName string
	TestMode   string // "e2e" or "gen_only" (perf-sanity-v2 test ids)
	Hardware   launch.Hardware

	Partition, Account string
	TimeLimit          string // Slurm --time
	JobName            string

	JobWorkspace string // on the cluster; the job log, results and inputs live here
	LLMSrcNode   string // the checkout as seen from the nodes
	LLMData      string // models root on the cluster
	StageName    string
	DockerImage  string // registry/path:tag or enroot's registry#path:tag
	MPIType      string // worker steps' --mpi (v1 only: v2 drafts set it themselves)
	// PytestCommand replaces the default pytest command whole ("" = default).
	PytestCommand string
	TestListName  string // file name of the test list inside JobWorkspace
	// FinishedFile is written by an EXIT trap with "<rc> <epoch>" when the
	// batch script ends: the runner learns of the end from it without
	// asking slurmctld.
	FinishedFile string
}

// Files are the generator's inputs.
type Files struct {
	TestID       string // the test list's one line
	TestList     []byte
	ScriptPrefix []byte
	SrunArgs     []byte
}

// JobLogName is the batch script's output file inside the job workspace.
const JobLogName = "job-output.log"

// Build validates the inputs and renders the files.
func Build(in Inputs) (Files, error) {
	if err := in.validate(); err != nil {
		return Files{}, err
	}
	var f Files
	switch in.Profile {
	case launch.V1:
		f.TestID = "perf/test_perf_sanity.py::test_e2e[disagg_upload-" + in.ConfigName + "]"
	case launch.V2, launch.V3:
		f.TestID = "perf/test_perf_sanity.py::test_e2e[disagg_upload-" + in.TestMode + "-" + in.ConfigName + "]"
	default:
		return Files{}, fmt.Errorf("unknown profile %q", in.Profile)
	}
	f.TestList = []byte(f.TestID + "\n")

	ws := strings.TrimSuffix(in.JobWorkspace, "/")
	pytest := in.PytestCommand
	if pytest == "" {
		pytest = DefaultPytestCommand(in.LLMSrcNode, in.LLMData, ws, in.TestListName, in.TimeLimit)
	}
	h := in.Hardware
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("#!/bin/bash")
	line("#SBATCH --nodes=%d", h.TotalNodes)
	line("#SBATCH --ntasks=%d", h.TotalGPUs)
	line("#SBATCH --ntasks-per-node=%d", h.GPUsPerNode)
	line("#SBATCH --gpus-per-node=%d", h.GPUsPerNode)
	line("#SBATCH --partition=%s", in.Partition)
	line("#SBATCH --account=%s", in.Account)
	line("#SBATCH --time=%s", in.TimeLimit)
	line("#SBATCH --job-name=%s", in.JobName)
	line("#SBATCH --output=%s/%s", ws, JobLogName)
	line("")
	line("set -xEeuo pipefail")
	line("%s", FinishedTrap(shellquote.Quote(in.FinishedFile)))
	line(`echo "Starting Slurm job $SLURM_JOB_ID on $SLURM_NODELIST"`)
	line("export jobWorkspace=%s", shellquote.Quote(ws))
	line("export llmSrcNode=%s", shellquote.Quote(in.LLMSrcNode))
	line("export stageName=%s", shellquote.Quote(in.StageName))
	line(`export pytestCommand="%s"`, pytest)
	f.ScriptPrefix = []byte(b.String())

	image := EnrootImage(in.DockerImage)
	args := []string{
		"--container-image=" + image,
		"--container-mounts=" + joinMounts(ws, in.LLMSrcNode, in.LLMData),
		"--container-workdir=" + ws,
		"--container-name=disagg-${SLURM_JOB_ID}",
		"--no-container-mount-home",
	}
	if in.Profile == launch.V1 && in.MPIType != "" {
		args = append(args, "--mpi="+in.MPIType)
	}
	f.SrunArgs = []byte(strings.Join(args, "\n") + "\n")
	return f, nil
}

// FinishedTrap is the EXIT trap that writes "<rc> <epoch>" to fileWord,
// a shell word that is a path inside the trap's single-quoted command (a
// word that needs no quoting, or one in double quotes).
//
// It runs on every exit, including scancel and the time limit (bash runs
// EXIT traps on SIGTERM); a draft that installs its own EXIT trap only
// costs the runner its fast end detection, not correctness. The draft's
// own scancel sends a SIGTERM just as the script exits, and one that
// arrives while the trap runs kills bash before the write (an EXIT trap
// never runs twice): CI lost a sentinel so while the trap forked `date`.
// So the trap ignores TERM first (after saving $?, which `trap` resets)
// and forks nothing (printf's %(...)T, bash 4.2); what is left is the
// time of one assignment.
func FinishedTrap(fileWord string) string {
	return `trap '_rc=$?; trap "" TERM; printf "%s %(%s)T\n" "$_rc" -1 > ` + fileWord + `' EXIT`
}

// DefaultPytestCommand is the pytest command CI uses, with pytest's own
// timeout a little inside the job's time limit so that pytest, not Slurm,
// reports a hanging test.
func DefaultPytestCommand(llmSrcNode, llmData, ws, testList, timeLimit string) string {
	timeout := 3600
	if secs, err := LimitSeconds(timeLimit); err == nil && secs > 0 {
		timeout = max(60, secs-300)
	}
	return fmt.Sprintf("LLM_ROOT=%[1]s LLM_MODELS_ROOT=%[2]s %[1]s/tensorrt_llm/llmapi/trtllm-llmapi-launch pytest -v --timeout=%[5]d --rootdir %[1]s/tests/integration/defs --output-dir=%[3]s/ --junit-xml=%[3]s/results.xml -o junit_logging=out-err --test-list=%[3]s/%[4]s",
		llmSrcNode, llmData, ws, testList, timeout)
}

func joinMounts(paths ...string) string {
	seen := map[string]bool{}
	var m []string
	for i, p := range paths {
		if p == "" || seen[p] {
			continue
		}
		seen[p] = true
		spec := p + ":" + p
		if i == len(paths)-1 { // the models are read-only
			spec += ":ro"
		}
		m = append(m, spec)
	}
	return strings.Join(m, ",")
}

// EnrootImage rewrites registry/path:tag as enroot's registry#path:tag,
// which pyxis needs to tell the registry from the path.
func EnrootImage(image string) string {
	if strings.Contains(image, "#") {
		return image
	}
	host, rest, ok := strings.Cut(image, "/")
	if !ok || !(strings.ContainsAny(host, ".:") || host == "localhost") {
		return image
	}
	return host + "#" + rest
}

var (
	slurmName = lazyre.New(`^[A-Za-z0-9_.+-]+(,[A-Za-z0-9_.+-]+)*$`)
	// Slurm's --time forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S. The
	// leading number is at most 9 digits (it is bounded below anyway),
	// the others at most 2.
	timeLimit = lazyre.New(`^(?:(\d{1,9})-(\d{1,2})(?::(\d{1,2})(?::(\d{1,2}))?)?|(\d{1,9})(?::(\d{1,2})(?::(\d{1,2}))?)?)$`)
	imageRef  = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._/:@#+-]*$`)
	mpiType   = lazyre.New(`^[A-Za-z0-9_]+$`)
	// Stage names are Jenkins stage titles, which may hold almost anything
	// ("GB200 perf [2 nodes] #1"); the prefix quotes them, and perf-sanity-v2
	// writes them inside double quotes, where only these characters act.
	stageName = lazyre.New("^[^\"$`\\\\\n\r]+$")
)

// MaxLimitSeconds is the longest time limit accepted: 365 days, far above
// any test, far below anything that overflows.
const MaxLimitSeconds = 365 * 86400

// timeLimitExpected is what a time limit must look like.
const timeLimitExpected = "a Slurm time limit such as 02:00:00, 90 or 1-00:00:00 (minutes and seconds below 60, hours below 24 after days, at most 365 days)"

// LimitSeconds converts a Slurm time limit to seconds (0 for unlimited).
// It is strict where Slurm is lax: minutes and seconds after the leading
// field are below 60, hours after days below 24, and the whole is at most
// MaxLimitSeconds.
func LimitSeconds(s string) (int, error) {
	switch s {
	case "UNLIMITED", "unlimited", "INFINITE", "infinite":
		return 0, nil
	}
	m := timeLimit.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("not a Slurm time limit: %q", s)
	}
	n := make([]int, len(m))
	for i, v := range m[1:] {
		n[i+1], _ = strconv.Atoi(v) // "" (an absent field) is 0
	}
	var secs int
	var ok bool
	if m[1] != "" { // D-H[:M[:S]]
		d, h, mi, se := n[1], n[2], n[3], n[4]
		ok = h < 24 && mi < 60 && se < 60
		secs = d*86400 + h*3600 + mi*60 + se
	} else {
		switch {
		case m[7] != "": // H:M:S
			ok = n[6] < 60 && n[7] < 60
			secs = n[5]*3600 + n[6]*60 + n[7]
		case m[6] != "": // M:S
			ok = n[6] < 60
			secs = n[5]*60 + n[6]
		default: // M
			ok = true
			secs = n[5] * 60
		}
	}
	if !ok || secs > MaxLimitSeconds {
		return 0, fmt.Errorf("not a Slurm time limit within bounds: %q", s)
	}
	return secs, nil
}

func validTimeLimit(s string) bool {
	_, err := LimitSeconds(s)
	return err == nil
}

// safeWord is a non-empty shell-safe word without a slash.
func safeWord(s string) bool {
	return s != "" && shellquote.IsSafe(s) && !strings.Contains(s, "/")
}

// safePath is an absolute shell-safe path.
func safePath(s string) bool { return strings.HasPrefix(s, "/") && shellquote.IsSafe(s) }

// CheckAbsPath accepts an absolute path made of shell-safe characters, as
// the prefix needs every path it writes; field names the input.
func CheckAbsPath(field, p string) error {
	if !safePath(p) {
		return &ValidationError{Name: field, Value: p, Expected: absPathExpected}
	}
	return nil
}

const absPathExpected = "an absolute path of letters, digits and / _ . + = , : @ % -"

// The inputs a ValidationError names, by what they are; the caller turns
// them into the names its user knows (a flag, a variable).
const (
	FieldPartition     = "partition"
	FieldAccount       = "account"
	FieldTimeLimit     = "time limit"
	FieldJobName       = "job name"
	FieldClusterWork   = "cluster workdir"
	FieldNodeCheckout  = "node checkout"
	FieldModelsRoot    = "models root"
	FieldStageName     = "stage name"
	FieldImage         = "image"
	FieldMPIType       = "MPI type"
	FieldConfig        = "config"
	FieldPytestCommand = "pytest command"
)

// ValidationError names the input at fault (a Field constant, or a name
// the caller put in its place) and what was expected of it.
type ValidationError struct{ Name, Value, Expected string }

func (e *ValidationError) Error() string {
	return fmt.Sprintf("%s=%q: expected %s", e.Name, e.Value, e.Expected)
}

// CheckConfigName accepts a config base name: the config YAML is found by
// it under the checkout, so it must not be a path (a caller checks it
// before opening any file), and it is written into the test id.
func CheckConfigName(name string) error {
	if !safeWord(name) {
		return &ValidationError{Name: FieldConfig, Value: name, Expected: "a config base name (no path) of letters, digits and _ . + = , @ % -"}
	}
	return nil
}

func (in Inputs) validate() error {
	// The config name first: other values (the stage name) default to it,
	// and its own name says best what to fix.
	if err := CheckConfigName(in.ConfigName); err != nil {
		return err
	}
	checks := []struct {
		name, value string
		ok          func(string) bool
		expected    string
	}{
		{FieldPartition, in.Partition, slurmName.MatchString, "a Slurm partition name (letters, digits, _ . + -)"},
		{FieldAccount, in.Account, slurmName.MatchString, "a Slurm account name (letters, digits, _ . + -)"},
		{FieldTimeLimit, in.TimeLimit, validTimeLimit, timeLimitExpected},
		{FieldJobName, in.JobName, safeWord, "letters, digits and _ . + = , : @ % -"},
		{FieldClusterWork, in.JobWorkspace, safePath, absPathExpected},
		{FieldNodeCheckout, in.LLMSrcNode, safePath, absPathExpected},
		{FieldModelsRoot, in.LLMData, safePath, absPathExpected},
		{FieldStageName, in.StageName, stageName.MatchString, "a stage name without \", $, `, \\ or line breaks"},
		{FieldImage, in.DockerImage, imageRef.MatchString, "an image reference such as nvcr.io/nvidia/tensorrt-llm/release:1.1.0"},
		{"test list name", in.TestListName, safeWord, "a file name"},
		{"finished file", in.FinishedFile, safePath, "an absolute path"},
	}
	for _, c := range checks {
		if !c.ok(c.value) {
			return &ValidationError{Name: c.name, Value: c.value, Expected: c.expected}
		}
	}
	if in.Profile == launch.V1 && in.MPIType != "" && !mpiType.MatchString(in.MPIType) {
		return &ValidationError{Name: FieldMPIType, Value: in.MPIType, Expected: "an srun --mpi plugin name such as pmix"}
	}
	if in.Profile != launch.V1 && in.TestMode != "e2e" && in.TestMode != "gen_only" {
		return &ValidationError{Name: "test mode", Value: in.TestMode, Expected: "e2e or gen_only"}
	}
	if in.PytestCommand != "" {
		if err := checkPytestCommand(in.PytestCommand); err != nil {
			return err
		}
	}
	return nil
}

// checkPytestCommand accepts a replacement pytest command that can sit
// between double quotes and be eval'ed by the run script without running
// anything but itself: no quotes, backquotes or backslashes, and nothing
// launch.CheckEvalBound refuses (command separators, expansions other
// than $name or ${name}, references to variables whose values are not
// inert: such a value is pasted in when launch.sh runs, then eval'ed).
func checkPytestCommand(cmd string) error {
	for i := 0; i < len(cmd); i++ {
		if c := cmd[i]; strings.IndexByte("\"'`\\\n\r", c) >= 0 {
			return &ValidationError{Name: FieldPytestCommand, Value: cmd, Expected: fmt.Sprintf("a plain command line (no %q: it is written inside double quotes and eval'ed on the nodes)", c)}
		}
	}
	if err := launch.CheckEvalBound(cmd); err != nil {
		return &ValidationError{Name: FieldPytestCommand, Value: cmd, Expected: "a plain command line: " + err.Error()}
	}
	return nil
}
