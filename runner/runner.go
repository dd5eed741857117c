// Package runner orders the stages of a run as PIPELINE.md lists them:
// check, write inputs, generate, connect and upload, submit, follow,
// collect, verdict. Each stage is one method of run (run.go), in that
// order; attach enters at follow.
//
// Data flows one way: Settings → Plan (config parsed once, the three
// generator inputs) → launch.sh → the cluster → Outcome. The runner knows
// nothing of flags, environment variables or Jenkins (the CLI resolves
// those into Settings, and names inputs in messages through
// Settings.Names), and reaches the cluster only through the Cluster
// interface below, which sbatch implements over a transport. It never
// composes a shell or Slurm command line itself.
package runner

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/lazyre"
	"github.com/disagg-runner/disagg-runner/internal/perf"
	"github.com/disagg-runner/disagg-runner/sbatch"
)

// Cluster is everything a run asks of the cluster. *sbatch.Client
// implements it over SSH or on the login node; tests use a fake.
type Cluster interface {
	// String names the way to the cluster for logs ("ssh user@host:22").
	String() string
	// Probe answers the cluster half of the checklist in one round trip.
	Probe(ctx context.Context, req sbatch.ProbeRequest) (sbatch.Facts, error)
	// Recorded is the job id an earlier attempt recorded in jobIDFile, or "".
	Recorded(ctx context.Context, jobIDFile string) (sbatch.JobID, error)
	Query(ctx context.Context, id sbatch.JobID) (sbatch.JobState, error)
	MoveAside(ctx context.Context, dir, to string) error
	Upload(ctx context.Context, files []sbatch.File) error
	// Submit runs sbatch on script in dir and records the id in jobIDFile.
	Submit(ctx context.Context, dir, script, jobIDFile string) (sbatch.JobID, error)
	// Watch returns the job's confirmed final state, calling onChange on
	// every change worth telling.
	Watch(ctx context.Context, id sbatch.JobID, finishedFile string, onChange func(sbatch.JobState)) (sbatch.JobState, error)
	// Follow streams a file from byte 0 to w until stop closes.
	Follow(ctx context.Context, path string, w io.Writer, stop <-chan struct{}) (int64, error)
	// FollowMany streams every file matching pattern in dir, each line
	// prefixed with its role.
	FollowMany(ctx context.Context, dir, pattern string, w io.Writer, stop <-chan struct{}) error
	// Fetch copies what names (globs) match under remoteDir into
	// localDir, leaving out the files named in except.
	Fetch(ctx context.Context, remoteDir string, names, except []string, localDir string) (fetched, missing []string, err error)
	// Settle is Query for whether the job has ended: a COMPLETING job
	// whose end accounting recorded comes back as that end.
	Settle(ctx context.Context, id sbatch.JobID) (sbatch.JobState, error)
	// Cancel cancels the job and returns its state once it ended.
	Cancel(ctx context.Context, id sbatch.JobID) (sbatch.JobState, error)
	// ReadFile returns at most limit bytes of a file; nil for a missing one.
	ReadFile(ctx context.Context, path string, limit int64) ([]byte, error)
	Close() error
}

// Connector opens the run's one connection to the cluster (SSH, or this
// machine when it is the login node). The CLI decides which.
type Connector func(ctx context.Context) (Cluster, error)

// Settings are the run's inputs, resolved from flags and environment by
// the CLI.
type Settings struct {
	Partition     string
	Account       string
	DockerImage   string
	LLMData       string // models root on the cluster
	MPIType       string
	TRTLLMDir     string // the checkout on this machine
	TRTLLMNodeDir string // the checkout as the nodes see it ("" = TRTLLMDir)
	Workspace     string // local: inputs and results go below it
	ConfigName    string
	ClusterWork   string // on the cluster: job workspaces go below it
	TimeLimit     string // "" = the config's slurm.job_time, else 02:00:00
	RunSh         string // node path ("" = default under the node checkout)
	InstallSh     string
	DraftPath     string // local path ("" = default under TRTLLMDir)
	PytestCommand string // "" = built as CI builds it
	StageName     string // "" = the config name
	Profile       string // "" = detect from the checkout
	RunID         string // names the local run folder and the job workspace
	// Test names the test within a run of several (RunMany): its inputs,
	// results and job workspace get folders of their own below the run's,
	// and its job's name ends with it. "" for a run of one.
	Test string
	// WantTestID is the test id a test list gave for this test (""
	// when it gave a config name); WantFrom says where ("FILE:LINE").
	// The config must make exactly that id.
	WantTestID, WantFrom string
	BuildURL             string // recorded in the summary
	// PrecheckSwitch is the precheck override when one is set (v2, v3).
	PrecheckSwitch *string
	// ClusterName selects perf-sanity-v3's UCX row ("" = none).
	ClusterName string
	// ModelsRootEnv is the submitter's LLM_MODELS_ROOT, v3's fallback
	// when the pytest line sets none (the runner's own line does).
	ModelsRootEnv string
	// GeneratorEnv is the environment of the checkout's own generator
	// (profile checkout, and check's comparison with it); its PATH is
	// where python3 is looked for. nil: the runner's own.
	GeneratorEnv []string

	// Names turns an input's name (the Field constants) into the words
	// its user knows, such as a flag or an environment variable; nil
	// keeps the field's own name.
	Names func(Field) string
}

// Field names an input by what it is.
type Field = string

// The inputs a message can name. prefix's ValidationError uses the same
// words.
const (
	FieldPartition     Field = "partition"
	FieldAccount       Field = "account"
	FieldImage         Field = "image"
	FieldModelsRoot    Field = "models root"
	FieldMPIType       Field = "MPI type"
	FieldCheckout      Field = "checkout"
	FieldNodeCheckout  Field = "node checkout"
	FieldWorkspace     Field = "workspace"
	FieldConfig        Field = "config"
	FieldClusterWork   Field = "cluster workdir"
	FieldTimeLimit     Field = "time limit"
	FieldRunScript     Field = "run script"
	FieldInstallScript Field = "install script"
	FieldDraft         Field = "draft"
	FieldPytestCommand Field = "pytest command"
	FieldStageName     Field = "stage name"
	FieldProfile       Field = "profile"
	FieldRunID         Field = "run id"
	FieldCluster       Field = "cluster"
	FieldClusterName   Field = "cluster name"
)

func (s Settings) name(f Field) string {
	if s.Names == nil {
		return f
	}
	return s.Names(f)
}

// Options tune a run beyond its Settings.
type Options struct {
	DryRun      bool // stop after generation; print the plan and the script
	FollowRoles bool // also stream the per-role logs, prefixed with the role
	// PendingEvery is how often a still-PENDING job is reported (default 3 min).
	PendingEvery time.Duration
	// Perf chooses the benchmark numbers' baseline and gates; with
	// FailOnRegression a run that passed but regressed exits 15.
	Perf             perf.Options
	FailOnRegression bool
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

var runIDUnsafe = lazyre.New(`[^A-Za-z0-9_.+-]+`)

// MaxRunIDLen bounds a run id: it is a folder name, and the job workspace
// moved aside gets ".job<id>" added, all within a file name's 255 bytes.
const MaxRunIDLen = 200

var runIDRule = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9_.+-]*$`)

// CheckRunID accepts a run id that is one folder name, safe in a path and
// a shell word, of at most MaxRunIDLen characters. The whole id is
// checked: it is joined to the workspace and the cluster workdir.
func CheckRunID(id string) error {
	if len(id) > MaxRunIDLen || !runIDRule.MatchString(id) {
		return fmt.Errorf("%q: expected one folder name (letters, digits and _ . + -, starting with a letter or digit, at most %d characters)", id, MaxRunIDLen)
	}
	return nil
}

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
	id = strings.TrimRight(strings.TrimLeft(runIDUnsafe.ReplaceAllString(id, "_"), "_.+-"), "_.")
	return boundRunID(id)
}

// boundRunID shortens an id longer than MaxRunIDLen to its head, a digest
// of the whole and its tail: the build tag stays at the start, the config
// name at the end (where the job name is taken from), and distinct ids
// stay distinct.
func boundRunID(id string) string {
	if len(id) <= MaxRunIDLen {
		return id
	}
	const head, digest = 64, 16
	sum := sha256.Sum256([]byte(id))
	tail := MaxRunIDLen - head - digest - 2
	return id[:head] + "-" + hex.EncodeToString(sum[:digest/2]) + "-" + id[len(id)-tail:]
}
