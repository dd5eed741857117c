// Package runner orders the stages of a run: check, write inputs, generate,
// connect, submit, follow, collect, verdict. It knows nothing of flags,
// environment variables or Jenkins (the CLI resolves those into Settings)
// and reaches the cluster only through a transport.
package runner

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/config"
	"github.com/disagg-runner/disagg-runner/internal/launch"
	"github.com/disagg-runner/disagg-runner/prefix"
)

// Settings are the run's inputs, resolved from flags and environment by
// the CLI. Field comments name the environment variable.
type Settings struct {
	Partition     string // CLUSTER_PARTITION
	Account       string // CLUSTER_ACCOUNT
	DockerImage   string // DOCKER_IMAGE
	LLMData       string // CLUSTER_LLM_DATA
	MPIType       string // MPI_TYPE
	TRTLLMDir     string // TRTLLM_DIR (local checkout)
	TRTLLMNodeDir string // TRTLLM_NODE_DIR ("" = TRTLLMDir)
	Workspace     string // WORKSPACE (local)
	ConfigName    string // CONFIG_NAME
	Cluster       string // CLUSTER_HOST, for messages; "" = this machine
	ClusterWork   string // CLUSTER_WORKDIR
	TimeLimit     string // CLUSTER_TIME ("" = config's slurm.job_time, else 02:00:00)
	RunSh         string // RUN_SH ("" = default under TRTLLMNodeDir)
	InstallSh     string // INSTALL_SH
	DraftPath     string // DRAFT_LAUNCH_SH ("" = default under TRTLLMDir)
	PytestCommand string // PYTEST_COMMAND ("" = built as CI builds it)
	StageName     string // STAGE_NAME ("" = the config name)
	Profile       string // DISAGG_PROFILE ("" = detect)
	RunID         string // names the local run folder and the job workspace
	BuildURL      string // BUILD_URL, recorded in the summary
	// PrecheckSwitch is TRTLLM_DISAGG_CT_PRECHECK when set (perf-sanity-v2).
	PrecheckSwitch *string
}

// Plan is everything a run needs, computed from Settings before anything
// is written or submitted.
type Plan struct {
	Settings
	Profile      launch.Profile
	TestMode     string // v2 test-id mode
	ConfigPath   string
	Config       *config.Config
	Hardware     launch.Hardware
	GenOnly      bool
	LocalDir     string // <Workspace>/disagg-runner/<RunID>: inputs, launch.sh, job id
	ResultsDir   string // LocalDir/results: what Jenkins archives
	JobWorkspace string // on the cluster
	Files        prefix.Files
	Launch       *launch.Result
}

// File names inside the local run folder and the job workspace.
const (
	TestListName     = "test_list.txt"
	ScriptPrefixName = "script_prefix.sh"
	SrunArgsName     = "srun_args.txt"
	LaunchName       = "launch.sh"
	JobIDName        = "job_id"
	FinishedName     = "job-finished"
	SummaryName      = "summary.json"
)

var runIDUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.+-]+`)

// NewRunID names a run: the Jenkins BUILD_TAG when there is one (so that a
// retried step finds its own job again), else the user and a timestamp.
// The config name is always part of it, and with BUILD_TAG a short digest
// of whatever else shapes the job (stage, partition, image, ...), so that
// parallel stages of one build never share a folder or a job.
func NewRunID(buildTag, user, configName string, shape []string, now time.Time) string {
	var id string
	if buildTag != "" {
		sum := sha256.Sum256([]byte(strings.Join(shape, "\x00")))
		id = buildTag + "-" + configName + "-" + hex.EncodeToString(sum[:4])
	} else {
		var b [3]byte
		rand.Read(b[:])
		id = fmt.Sprintf("%s-%s-%s-%s", user, now.Format("20060102-150405"), hex.EncodeToString(b[:]), configName)
	}
	return strings.Trim(runIDUnsafe.ReplaceAllString(id, "_"), "_.")
}

func (s Settings) nodeDir() string {
	if s.TRTLLMNodeDir != "" {
		return s.TRTLLMNodeDir
	}
	return s.TRTLLMDir
}

func (s Settings) runSh() string {
	if s.RunSh != "" {
		return s.RunSh
	}
	return path.Join(s.nodeDir(), "jenkins/scripts/slurm_run.sh")
}

func (s Settings) installSh() string {
	if s.InstallSh != "" {
		return s.InstallSh
	}
	return path.Join(s.nodeDir(), "jenkins/scripts/slurm_install.sh")
}

func (s Settings) draftPath() string {
	if s.DraftPath != "" {
		return s.DraftPath
	}
	return filepath.Join(s.TRTLLMDir, launch.DraftPath)
}

// localPath maps a node path under the checkout to this machine's copy,
// for the checks that can only look locally.
func (s Settings) localPath(nodePath string) string {
	nd := s.nodeDir()
	if rel, ok := strings.CutPrefix(nodePath, strings.TrimSuffix(nd, "/")+"/"); ok {
		return filepath.Join(s.TRTLLMDir, rel)
	}
	return nodePath
}

// makePlan resolves settings into a plan, reading only local files. It
// returns the first error that stops planning; each error names the input.
func makePlan(s Settings) (*Plan, error) {
	p, err := loadConfig(s)
	if err != nil {
		return nil, err
	}
	return p, p.buildLaunch()
}

// loadConfig is the first half of planning: the profile, the config and
// the hardware layout computed from it.
func loadConfig(s Settings) (*Plan, error) {
	p := &Plan{Settings: s}
	if s.Profile != "" {
		prof, err := launch.ParseProfile(s.Profile)
		if err != nil {
			return nil, err
		}
		p.Profile = prof
	} else {
		p.Profile = DetectProfile(s.TRTLLMDir)
	}
	p.ConfigPath = launch.ConfigPath(p.Profile, s.TRTLLMDir, s.ConfigName)
	data, err := os.ReadFile(p.ConfigPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("Config file not found: %s (CONFIG_NAME=%s, profile %s)", p.ConfigPath, s.ConfigName, p.Profile)
	} else if err != nil {
		return nil, err
	}
	if p.Config, err = config.Parse(data, p.ConfigPath); err != nil {
		return nil, err
	}
	p.TestMode = "e2e"
	if strings.Contains(p.Config.Benchmark.Mode, "gen_only") {
		p.TestMode = "gen_only"
	}
	if p.Hardware, p.GenOnly, err = launch.Layout(p.Profile, p.Config, p.TestMode, p.ConfigPath); err != nil {
		return nil, err
	}
	if p.TimeLimit == "" {
		p.TimeLimit = p.Config.Slurm.JobTime
	}
	if p.TimeLimit == "" {
		p.TimeLimit = "02:00:00"
	}
	if p.StageName == "" {
		p.StageName = s.ConfigName
	}
	p.LocalDir = filepath.Join(s.Workspace, "disagg-runner", s.RunID)
	p.ResultsDir = filepath.Join(p.LocalDir, "results")
	p.JobWorkspace = path.Join(s.ClusterWork, s.RunID)
	return p, nil
}

// buildLaunch is the second half: the generator's inputs from validated
// settings, and launch.sh generated from them.
func (p *Plan) buildLaunch() error {
	s := p.Settings
	var err error
	p.Files, err = prefix.Build(prefix.Inputs{
		Profile:       p.Profile,
		ConfigName:    s.ConfigName,
		TestMode:      p.TestMode,
		Hardware:      p.Hardware,
		Partition:     s.Partition,
		Account:       s.Account,
		TimeLimit:     p.TimeLimit,
		JobName:       jobName(s.RunID),
		JobWorkspace:  p.JobWorkspace,
		LLMSrcNode:    s.nodeDir(),
		LLMData:       s.LLMData,
		StageName:     p.StageName,
		DockerImage:   s.DockerImage,
		MPIType:       s.MPIType,
		PytestCommand: s.PytestCommand,
		TestListName:  TestListName,
		FinishedFile:  path.Join(p.JobWorkspace, FinishedName),
	})
	if err != nil {
		return err
	}

	// Generate from the inputs in memory, exactly as `generate` would from
	// the files written in stage 2 (the paths are the ones written there).
	mem := map[string][]byte{
		filepath.Join(p.LocalDir, TestListName):     p.Files.TestList,
		filepath.Join(p.LocalDir, ScriptPrefixName): p.Files.ScriptPrefix,
		filepath.Join(p.LocalDir, SrunArgsName):     p.Files.SrunArgs,
	}
	read := func(name string) ([]byte, error) {
		if d, ok := mem[name]; ok {
			return d, nil
		}
		return os.ReadFile(name)
	}
	p.Launch, err = launch.Generate(launch.Request{
		Profile:        p.Profile,
		LLMSrc:         s.TRTLLMDir,
		TestListPath:   filepath.Join(p.LocalDir, TestListName),
		DraftPath:      s.draftPath(),
		PrefixPath:     filepath.Join(p.LocalDir, ScriptPrefixName),
		SrunArgsPath:   filepath.Join(p.LocalDir, SrunArgsName),
		RunSh:          s.runSh(),
		InstallSh:      s.installSh(),
		StageName:      p.StageName,
		PrecheckSwitch: s.PrecheckSwitch,
	}, read)
	return err
}

// jobName keeps Slurm's job name short enough for squeue's default column
// while still naming the run.
func jobName(runID string) string {
	if len(runID) > 64 {
		runID = runID[len(runID)-64:]
	}
	return strings.TrimLeft(runID, "_.-")
}

// DetectProfile picks the generator profile of a checkout on this machine.
func DetectProfile(llmSrc string) launch.Profile { return launch.Detect(llmSrc, isFile, isDir) }

// DetectProfileChecked is DetectProfile that refuses a checkout with only
// one of the two perf-sanity-v3 helper modules (launch.DetectChecked).
func DetectProfileChecked(llmSrc string) (launch.Profile, error) {
	return launch.DetectChecked(llmSrc, isFile, isDir)
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
