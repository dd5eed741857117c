package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/disagg-runner/disagg-runner/internal/checkoutgen"
	"github.com/disagg-runner/disagg-runner/internal/config"
	"github.com/disagg-runner/disagg-runner/internal/inputfile"
	"github.com/disagg-runner/disagg-runner/internal/launch"
	"github.com/disagg-runner/disagg-runner/prefix"
)

// Plan is everything a run needs, computed once from Settings and the
// parsed config before anything is written or submitted.
type Plan struct {
	Profile launch.Profile // with Checkout: the layout of the checkout's generation
	// Checkout says that the checkout's own generator makes launch.sh
	// (profile checkout), not ours.
	Checkout bool
	// ProfileWhy says how the profile was chosen, for check.
	ProfileWhy string
	ConfigPath string
	Config     *config.Config
	TestMode   string // v2 test-id mode: e2e or gen_only
	Hardware   launch.Hardware
	TimeLimit  string
	StageName  string

	NodeDir   string // the checkout as the nodes see it
	RunSh     string // node paths
	InstallSh string
	DraftPath string // local path

	LocalDir     string // <workspace>/disagg-runner/<run id>: inputs, launch.sh, job id
	ResultsDir   string // LocalDir/results: what Jenkins archives
	JobWorkspace string // on the cluster

	Files prefix.Files // the generator's three inputs
}

// generatorProfile names the generator: the profile, or checkout.
func (p *Plan) generatorProfile() launch.Profile {
	if p.Checkout {
		return checkoutgen.Profile
	}
	return p.Profile
}

// planPaths fills the paths that follow from the settings alone.
func planPaths(s Settings) *Plan {
	p := &Plan{NodeDir: s.TRTLLMNodeDir, RunSh: s.RunSh, InstallSh: s.InstallSh, DraftPath: s.DraftPath, StageName: s.StageName}
	if p.NodeDir == "" {
		p.NodeDir = s.TRTLLMDir
	}
	if p.RunSh == "" {
		p.RunSh = path.Join(p.NodeDir, "jenkins/scripts/slurm_run.sh")
	}
	if p.InstallSh == "" {
		p.InstallSh = path.Join(p.NodeDir, "jenkins/scripts/slurm_install.sh")
	}
	if p.DraftPath == "" {
		p.DraftPath = filepath.Join(s.TRTLLMDir, launch.DraftPath)
	}
	if p.StageName == "" {
		p.StageName = s.ConfigName
	}
	p.LocalDir = RunDir(s.Workspace, s.RunID)
	p.ResultsDir = filepath.Join(p.LocalDir, "results")
	p.JobWorkspace = path.Join(s.ClusterWork, s.RunID)
	if s.Test != "" {
		p.LocalDir = filepath.Join(RunDir(s.Workspace, s.RunID), "tests", s.Test)
		p.ResultsDir = filepath.Join(RunDir(s.Workspace, s.RunID), "results", s.Test)
		p.JobWorkspace = path.Join(s.ClusterWork, s.RunID, s.Test)
	}
	return p
}

// loadConfig reads and parses the config once and computes the layout.
func (p *Plan) loadConfig(s Settings) error {
	// The name is checked before any file is opened: a path in it would
	// read (and quote in an error) a YAML outside the checkout.
	if err := prefix.CheckConfigName(s.ConfigName); err != nil {
		var ve *prefix.ValidationError
		if errors.As(err, &ve) {
			ve.Name = s.name(FieldConfig)
		}
		return err
	}
	switch s.Profile {
	case checkoutgen.Profile:
		p.Checkout, p.Profile = true, DetectLayout("", s.TRTLLMDir)
		p.ProfileWhy = fmt.Sprintf("chosen with %s: the checkout's own %s makes launch.sh, in the %s layout", s.name(FieldProfile), checkoutgen.Script(p.Profile), p.Profile)
	case "":
		prof, err := DetectProfileChecked("", s.TRTLLMDir)
		if err != nil {
			return err
		}
		p.Profile, p.ProfileWhy = prof, "detected: "+launch.Evidence(prof)
	default:
		prof, err := launch.ParseProfile(s.Profile)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name(FieldProfile), err)
		}
		p.Profile, p.ProfileWhy = prof, "chosen with "+s.name(FieldProfile)
	}
	p.ConfigPath = launch.ConfigPath(p.Profile, s.TRTLLMDir, s.ConfigName)
	data, err := inputfile.Read(p.ConfigPath)
	if errors.Is(err, fs.ErrNotExist) {
		return &missingConfig{fmt.Sprintf("Config file not found: %s (%s=%s, profile %s)", p.ConfigPath, s.name(FieldConfig), s.ConfigName, p.Profile)}
	} else if err != nil {
		return fmt.Errorf("config file %s (%s=%s): %w", p.ConfigPath, s.name(FieldConfig), s.ConfigName, pathErrorCause(err))
	}
	if p.Config, err = config.Parse(data, p.ConfigPath); err != nil {
		return err
	}
	p.TestMode = "e2e"
	if strings.Contains(p.Config.Benchmark.Mode, "gen_only") {
		p.TestMode = "gen_only"
	}
	if p.Hardware, _, err = launch.Layout(p.Profile, p.Config, p.TestMode, p.ConfigPath); err != nil {
		return err
	}
	p.TimeLimit = s.TimeLimit
	if p.TimeLimit == "" {
		p.TimeLimit = p.Config.Slurm.JobTime
	}
	if p.TimeLimit == "" {
		p.TimeLimit = "02:00:00"
	}
	return nil
}

// missingConfig is a config file that is not there (a prerequisite, where
// a config that is there but wrong is bad input).
type missingConfig struct{ msg string }

func (e *missingConfig) Error() string { return e.msg }

// buildInputs renders the generator's three inputs. A validation error
// names the input as its user knows it; a time limit that came from the
// config is named as the config's field.
func (p *Plan) buildInputs(s Settings) error {
	var err error
	p.Files, err = prefix.Build(prefix.Inputs{
		Profile:       p.Profile,
		ConfigName:    s.ConfigName,
		TestMode:      p.TestMode,
		Hardware:      p.Hardware,
		Partition:     s.Partition,
		Account:       s.Account,
		TimeLimit:     p.TimeLimit,
		JobName:       jobName(s.jobNameSource()),
		JobWorkspace:  p.JobWorkspace,
		LLMSrcNode:    p.NodeDir,
		LLMData:       s.LLMData,
		StageName:     p.StageName,
		DockerImage:   s.DockerImage,
		MPIType:       s.MPIType,
		PytestCommand: s.PytestCommand,
		TestListName:  TestListName,
		FinishedFile:  path.Join(p.JobWorkspace, FinishedName),
	})
	var ve *prefix.ValidationError
	if errors.As(err, &ve) {
		switch {
		case ve.Name == FieldTimeLimit && s.TimeLimit == "":
			ve.Name = "slurm.job_time in " + p.ConfigPath
		case ve.Name == prefix.FieldJobName:
			ve.Name = s.name(FieldRunID) + " (as the job name)"
		default:
			ve.Name = s.name(ve.Name)
		}
	}
	return err
}

// render generates launch.sh from the plan: by our generator, or with
// profile checkout by the checkout's own, which reads the three inputs
// from files in inputsDir (run's stage 2 has written them there; check
// writes them to a temporary folder).
func (p *Plan) render(ctx context.Context, s Settings, inputsDir string) (*launch.Result, error) {
	if p.Checkout {
		return p.renderCheckout(ctx, s, inputsDir)
	}
	return p.renderOurs(s)
}

// renderOurs is our generator: the inputs and the parsed config are
// handed over as they are; only the checkout's own files (the draft and
// what lies beside it) are read.
func (p *Plan) renderOurs(s Settings) (*launch.Result, error) {
	return launch.Generate(launch.Request{
		Profile:        p.Profile,
		LLMSrc:         s.TRTLLMDir,
		TestListPath:   filepath.Join(p.LocalDir, TestListName),
		DraftPath:      p.DraftPath,
		PrefixPath:     filepath.Join(p.LocalDir, ScriptPrefixName),
		SrunArgsPath:   filepath.Join(p.LocalDir, SrunArgsName),
		RunSh:          p.RunSh,
		InstallSh:      p.InstallSh,
		StageName:      p.StageName,
		PrecheckSwitch: s.PrecheckSwitch,
		ClusterName:    s.ClusterName,
		ModelsRootEnv:  s.ModelsRootEnv,
		TestList:       p.Files.TestList,
		ScriptPrefix:   p.Files.ScriptPrefix,
		SrunArgs:       p.Files.SrunArgs,
		Config:         p.Config,
		Names:          s.launchInputName,
	}, inputfile.Read)
}

// pathErrorCause is what went wrong with a file, without the operation
// and path an *fs.PathError adds (the message names the file already).
func pathErrorCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// renderCheckout runs the checkout's own generator and checks the draft's
// variables against what it wrote, as for our profiles. Its stderr lines
// become warnings.
func (p *Plan) renderCheckout(ctx context.Context, s Settings, inputsDir string) (*launch.Result, error) {
	draft, err := os.ReadFile(p.DraftPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.name(FieldDraft), err)
	}
	out, err := checkoutgen.Run(ctx, p.checkoutRequest(s, inputsDir))
	if err != nil {
		return nil, err
	}
	res := &launch.Result{Script: out.Script, Profile: p.Profile, ConfigPath: p.ConfigPath, Config: p.Config, Hardware: p.Hardware}
	res.Contract = launch.CheckContract(launch.ContractInput{Draft: draft, DraftPath: p.DraftPath, Defined: [][]byte{out.Script}})
	for _, l := range strings.Split(string(out.Stderr), "\n") {
		if strings.TrimSpace(l) != "" {
			res.Warnings = append(res.Warnings, out.Generator+": "+l)
		}
	}
	return res, nil
}

// checkoutRequest is the checkout's own generator on the plan's inputs,
// in inputsDir, with the flags its generation takes: the stage name from
// perf-sanity-v2 on, the cluster name from perf-sanity-v3 on (or whenever
// it is set with profile checkout).
func (p *Plan) checkoutRequest(s Settings, inputsDir string) checkoutgen.Request {
	req := checkoutgen.Request{
		Profile: p.Profile, LLMSrc: s.TRTLLMDir, DraftLaunchSh: p.DraftPath, RunSh: p.RunSh, InstallSh: p.InstallSh,
		TestList:     filepath.Join(inputsDir, TestListName),
		ScriptPrefix: filepath.Join(inputsDir, ScriptPrefixName),
		SrunArgs:     filepath.Join(inputsDir, SrunArgsName),
		Dir:          inputsDir, Env: s.GeneratorEnv,
	}
	if p.Profile != launch.V1 {
		req.StageName = p.StageName
	}
	if p.Profile == launch.V3 || p.Checkout {
		req.ClusterName = s.ClusterName
	}
	return req
}

// writeInputsTo writes the generator's three inputs into dir.
func (p *Plan) writeInputsTo(dir string) error {
	for _, f := range []struct {
		name string
		data []byte
	}{{TestListName, p.Files.TestList}, {ScriptPrefixName, p.Files.ScriptPrefix}, {SrunArgsName, p.Files.SrunArgs}} {
		if err := writeFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// launchInputName names the generator's inputs as the run's user knows
// them; the three the runner makes itself are named as such.
func (s Settings) launchInputName(input string) string {
	field, ok := map[string]Field{
		launch.InputCheckout:      FieldCheckout,
		launch.InputDraft:         FieldDraft,
		launch.InputRunScript:     FieldRunScript,
		launch.InputInstallScript: FieldInstallScript,
		launch.InputStageName:     FieldStageName,
	}[input]
	if !ok {
		return "the generated " + input
	}
	return s.name(field)
}

// localPath maps a node path under the checkout to this machine's copy,
// for the scripts a checkout on the cluster lacks and the run uploads.
func (p *Plan) localPath(s Settings, nodePath string) (string, bool) {
	rel, ok := strings.CutPrefix(nodePath, strings.TrimSuffix(p.NodeDir, "/")+"/")
	if !ok {
		return "", false
	}
	return filepath.Join(s.TRTLLMDir, rel), true
}

// largestPlan is the index of the plan with the most nodes (the first of
// them; nil plans left out), -1 when there is none.
func largestPlan(plans []*Plan) int {
	best := -1
	for i, p := range plans {
		if p != nil && (best < 0 || p.Hardware.TotalNodes > plans[best].Hardware.TotalNodes) {
			best = i
		}
	}
	return best
}

// jobNameSource is what the job is named after: the run id, and the test
// within a run of several (last, where jobName keeps it).
func (s Settings) jobNameSource() string {
	if s.Test == "" {
		return s.RunID
	}
	return s.RunID + "-" + s.Test
}

// jobName keeps Slurm's job name short enough for squeue's default column
// while still naming the run.
func jobName(runID string) string {
	if len(runID) <= 64 {
		return runID
	}
	if tail := strings.TrimLeft(runID[len(runID)-64:], "_.-"); tail != "" {
		return tail
	}
	return runID[:64] // a valid run id starts with a letter or digit
}

// DetectProfileChecked is DetectProfile that refuses a checkout with only
// one of the two perf-sanity-v3 helper modules (launch.DetectChecked). A
// relative llmSrc is looked up below dir and named as given.
func DetectProfileChecked(dir, llmSrc string) (launch.Profile, error) {
	in := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	return launch.DetectChecked(llmSrc, func(p string) bool { return isFile(in(p)) }, func(p string) bool { return isDir(in(p)) })
}

// DetectLayout is the generation whose layout (config folder, test ids,
// generator path) a checkout has, by launch.Detect: unlike
// DetectProfileChecked it accepts a checkout between the pinned
// generations, whose own generator profile checkout runs.
func DetectLayout(dir, llmSrc string) launch.Profile {
	in := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	return launch.Detect(llmSrc, func(p string) bool { return isFile(in(p)) }, func(p string) bool { return isDir(in(p)) })
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
