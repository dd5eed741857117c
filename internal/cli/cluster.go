package cli

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/disagg-runner/disagg-runner/internal/transport"
	"github.com/disagg-runner/disagg-runner/runner"
	"github.com/disagg-runner/disagg-runner/sbatch"
)

// connFlags says how to reach the login node. Without a host the runner
// works on this machine, as on a login node.
type connFlags struct {
	Host             string        `name:"cluster-host" env:"CLUSTER_HOST" help:"Login node to reach over SSH; unset means this machine is the login node (no SSH)." placeholder:"HOST"`
	Port             int           `name:"cluster-port" env:"CLUSTER_PORT" default:"22" help:"SSH port of the login node (1-65535)."`
	User             string        `name:"cluster-user" env:"CLUSTER_USER" help:"SSH user (default: the current user)."`
	SSHKey           string        `name:"cluster-ssh-key" env:"CLUSTER_SSH_KEY" help:"Private key file (Jenkins sshUserPrivateKey); its passphrase, if any, is read from CLUSTER_SSH_KEY_PASSPHRASE only. Default: ssh-agent, then ~/.ssh/id_*." placeholder:"FILE"`
	KnownHosts       string        `name:"cluster-known-hosts" env:"CLUSTER_KNOWN_HOSTS" help:"known_hosts file that verifies the login node's host key (default ~/.ssh/known_hosts). Verification cannot be turned off." placeholder:"FILE"`
	JumpHost         string        `name:"cluster-jump-host" env:"CLUSTER_JUMP_HOST" help:"Reach the login node through this host: [user@]host[:port]." placeholder:"HOST"`
	AcceptNewHostKey bool          `name:"accept-new-host-key" env:"CLUSTER_ACCEPT_NEW_HOST_KEY" help:"Like OpenSSH's StrictHostKeyChecking=accept-new: add an unknown host's key to the known_hosts file (a changed key is still refused)."`
	ReconnectBudget  time.Duration `name:"reconnect-budget" env:"CLUSTER_RECONNECT_BUDGET" default:"2m" help:"How long to keep trying to reconnect after the SSH connection drops (a positive duration such as 30s or 5m)."`

	// helperShells is the transport's number of helper shells (0: its
	// default); a run of several tests asks for more.
	helperShells int `kong:"-"`
}

// validate checks how to reach the cluster before anything is tried, so
// that a bad value is bad input (exit 11), not an unreachable cluster (or
// worse, a silent default: port 0 used to mean 22, a budget of 0 two
// minutes). It is checked even without a host: the value is wrong anyway.
func (c connFlags) validate() error {
	if c.Port < 1 || c.Port > 65535 {
		return badInput(fmt.Errorf("CLUSTER_PORT=%d: expected a TCP port from 1 to 65535", c.Port))
	}
	if c.JumpHost != "" {
		if err := transport.CheckJumpHost(c.JumpHost); err != nil {
			return badInput(fmt.Errorf("CLUSTER_JUMP_HOST=%q: expected [user@]host[:port] with a port from 1 to 65535", c.JumpHost))
		}
	}
	if c.ReconnectBudget <= 0 {
		return badInput(fmt.Errorf("CLUSTER_RECONNECT_BUDGET=%s: expected a positive duration such as 2m", c.ReconnectBudget))
	}
	return nil
}

// transport opens the way to the login node: SSH, or this machine.
func (c connFlags) transport(ctx context.Context, env Env, logf, debugf func(string, ...any)) (transport.Transport, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	if c.Host == "" {
		return transport.Local{}, nil
	}
	known := env.abs(c.KnownHosts)
	if known == "" {
		if home, err := os.UserHomeDir(); err == nil {
			known = filepath.Join(home, ".ssh", "known_hosts")
		}
	}
	return transport.DialSSH(ctx, transport.SSHConfig{
		Host:             c.Host,
		Port:             c.Port,
		User:             c.User,
		KeyFile:          env.abs(c.SSHKey),
		KeyPassphrase:    env.Getenv("CLUSTER_SSH_KEY_PASSPHRASE"),
		AgentSocket:      env.Getenv("SSH_AUTH_SOCK"),
		KnownHostsFile:   known,
		AcceptNewHostKey: c.AcceptNewHostKey,
		JumpHost:         c.JumpHost,
		ReconnectBudget:  c.ReconnectBudget,
		HelperShells:     c.helperShells,
		Logf:             logf,
		Debugf:           debugf,
	})
}

// connector opens the run's one connection and puts the Slurm client on
// it; debugf receives the client's and the transport's step lines.
func (c connFlags) connector(env Env, logf, debugf func(string, ...any)) runner.Connector {
	return func(ctx context.Context) (runner.Cluster, error) {
		t, err := c.transport(ctx, env, logf, debugf)
		if err != nil {
			return nil, err
		}
		return &sbatch.Client{T: t, Logf: debugf}, nil
	}
}

// jobFlags are the run's inputs; the names of their environment variables
// are part of the interface (Jenkins jobs are configured with them). None
// is kong-required, so that the checklist can report every missing one at
// once (exit 10).
type jobFlags struct {
	Partition     string `name:"partition" env:"CLUSTER_PARTITION" help:"Slurm partition (#SBATCH --partition). Required." placeholder:"NAME"`
	Account       string `name:"account" env:"CLUSTER_ACCOUNT" help:"Slurm account (#SBATCH --account). Required." placeholder:"NAME"`
	DockerImage   string `name:"docker-image" env:"DOCKER_IMAGE" help:"Container image for --container-image; registry/path:tag is rewritten to enroot's registry#path:tag. Required." placeholder:"IMAGE"`
	LLMData       string `name:"llm-data" env:"CLUSTER_LLM_DATA" help:"Models root on the cluster: mounted into the container and given to pytest as LLM_MODELS_ROOT. Required." placeholder:"DIR"`
	MPIType       string `name:"mpi-type" env:"MPI_TYPE" default:"pmix" help:"MPI plugin of the worker steps (disagg-v1 puts --mpi=<type> in the srun args; perf-sanity-v2 drafts set it themselves)."`
	TRTLLMDir     string `name:"trtllm-dir" env:"TRTLLM_DIR" help:"TensorRT-LLM checkout root on this machine (configs, draft). Required." placeholder:"DIR"`
	TRTLLMNodeDir string `name:"trtllm-node-dir" env:"TRTLLM_NODE_DIR" help:"The checkout as the nodes see it (llmSrcNode). Default: --trtllm-dir." placeholder:"DIR"`
	Workspace     string `name:"workspace" env:"WORKSPACE" help:"Local workspace: inputs are written and results collected under <workspace>/disagg-runner/<run id>/. Default: the current folder." placeholder:"DIR"`
	ConfigName    string `name:"config" env:"CONFIG_NAME" help:"Config YAML base name; the test id is built from it. Required." placeholder:"NAME"`
	ClusterWork   string `name:"cluster-workdir" env:"CLUSTER_WORKDIR" help:"Folder on the cluster's shared file system under which each run gets its job workspace. Required with --cluster-host; default on a login node: <workspace>/disagg-runner/jobs." placeholder:"DIR"`
	Time          string `name:"time" env:"CLUSTER_TIME" help:"Job time limit (#SBATCH --time): M, M:S, H:M:S, D-H, D-H:M or D-H:M:S (minutes and seconds below 60, hours below 24 after days), at most 365 days. Default: the config's slurm.job_time, else 02:00:00." placeholder:"LIMIT"`
	RunSh         string `name:"run-sh" env:"RUN_SH" help:"Run script, node path. Default: <trtllm-node-dir>/jenkins/scripts/slurm_run.sh." placeholder:"PATH"`
	InstallSh     string `name:"install-sh" env:"INSTALL_SH" help:"Install script, node path. Default: <trtllm-node-dir>/jenkins/scripts/slurm_install.sh." placeholder:"PATH"`
	DraftLaunchSh string `name:"draft-launch-sh" env:"DRAFT_LAUNCH_SH" help:"The draft launch logic, local path. Default: <trtllm-dir>/jenkins/scripts/perf/disaggregated/slurm_launch_draft.sh." placeholder:"FILE"`
	PytestCommand string `name:"pytest-command" env:"PYTEST_COMMAND" help:"Replaces the default pytest command whole: a plain command line (no quotes, backslashes, ; & | < > ( ) or $(...)); it may name only $jobWorkspace, $llmSrcNode and Slurm's job numbers such as $SLURM_JOB_ID (the run script evals it on the nodes)." placeholder:"CMD"`
	StageName     string `name:"stage-name" env:"STAGE_NAME" help:"Stage name (perf-sanity-v2 derives UCX settings from it; shown in results). Default: Jenkins' STAGE_NAME, else the config name." placeholder:"NAME"`
	Profile       string `name:"profile" env:"DISAGG_PROFILE" enum:",disagg-v1,perf-sanity-v2,perf-sanity-v3,checkout" default:"" help:"Generator profile: disagg-v1, perf-sanity-v2 or perf-sanity-v3, or checkout: the checkout's own submit.py, run with python3 (needs PyYAML), makes launch.sh, for a generation disagg-runner does not know; the rest of the run is the same. Default: detected from the checkout."`
	ClusterName   string `name:"cluster-name" env:"CLUSTER_NAME" help:"Cluster name for perf-sanity-v3's UCX table (generate --cluster-name). Default: none (no cluster row)." placeholder:"NAME"`
	RunID         string `name:"run-id" env:"DISAGG_RUN_ID" help:"Names this run's local folder and job workspace: one folder name of letters, digits and _ . + - (starting with a letter or digit), at most 200 characters. Default: Jenkins' BUILD_TAG plus the config name (so a retried step re-attaches to its job), else user, time and a random suffix." placeholder:"ID"`
}

// settings resolves the flags into the runner's Settings.
func (j jobFlags) settings(env Env, conn connFlags, now time.Time) (runner.Settings, error) {
	ws := env.abs(j.Workspace)
	if ws == "" {
		ws = env.Dir
	}
	trtllm := env.abs(j.TRTLLMDir)
	runID := j.RunID
	if runID == "" {
		name := "user"
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
		shape := []string{j.StageName, j.Partition, j.Account, j.DockerImage, j.Profile, j.TRTLLMNodeDir, trtllm, j.PytestCommand, j.Time, conn.Host, j.ClusterWork}
		if j.ClusterName != "" { // appended only when set: existing run ids stay what they were
			shape = append(shape, j.ClusterName)
		}
		runID = runner.NewRunID(env.Getenv("BUILD_TAG"), name, j.ConfigName, shape, now)
	}
	mpi := j.MPIType
	if mpi == "" { // Jenkins passes empty parameters as empty variables
		mpi = "pmix"
	}
	clusterWork := j.ClusterWork
	if clusterWork == "" && conn.Host == "" {
		clusterWork = filepath.Join(ws, "disagg-runner", "jobs")
	}
	s := runner.Settings{
		Partition: j.Partition, Account: j.Account, DockerImage: j.DockerImage, LLMData: j.LLMData,
		MPIType: mpi, TRTLLMDir: trtllm, TRTLLMNodeDir: j.TRTLLMNodeDir, Workspace: ws,
		ConfigName: j.ConfigName, ClusterWork: clusterWork, TimeLimit: j.Time,
		RunSh: j.RunSh, InstallSh: j.InstallSh, DraftPath: env.abs(j.DraftLaunchSh), PytestCommand: j.PytestCommand,
		StageName: j.StageName, Profile: j.Profile, RunID: runID, BuildURL: env.Getenv("BUILD_URL"),
		ClusterName: j.ClusterName, Names: fieldName,
	}
	s.ModelsRootEnv, _ = env.LookupEnv("LLM_MODELS_ROOT")
	if v, ok := env.LookupEnv("TRTLLM_DISAGG_CT_PRECHECK"); ok {
		s.PrecheckSwitch = &v
	}
	s.GeneratorEnv = env.childEnviron()
	return s, nil
}

// fieldNames are the runner's inputs as a Jenkins user knows them: the
// environment variable, which is also the flag's env tag.
var fieldNames = map[runner.Field]string{
	runner.FieldPartition:     "CLUSTER_PARTITION",
	runner.FieldAccount:       "CLUSTER_ACCOUNT",
	runner.FieldImage:         "DOCKER_IMAGE",
	runner.FieldModelsRoot:    "CLUSTER_LLM_DATA",
	runner.FieldMPIType:       "MPI_TYPE",
	runner.FieldCheckout:      "TRTLLM_DIR",
	runner.FieldNodeCheckout:  "TRTLLM_NODE_DIR",
	runner.FieldWorkspace:     "WORKSPACE",
	runner.FieldConfig:        "CONFIG_NAME",
	runner.FieldClusterWork:   "CLUSTER_WORKDIR",
	runner.FieldTimeLimit:     "CLUSTER_TIME",
	runner.FieldRunScript:     "RUN_SH",
	runner.FieldInstallScript: "INSTALL_SH",
	runner.FieldDraft:         "DRAFT_LAUNCH_SH",
	runner.FieldPytestCommand: "PYTEST_COMMAND",
	runner.FieldStageName:     "STAGE_NAME",
	runner.FieldProfile:       "DISAGG_PROFILE",
	runner.FieldClusterName:   "CLUSTER_NAME",
	runner.FieldRunID:         "DISAGG_RUN_ID",
	runner.FieldCluster:       "CLUSTER_HOST/CLUSTER_PORT/CLUSTER_USER",
}

func fieldName(f runner.Field) string {
	if n, ok := fieldNames[f]; ok {
		return n
	}
	return f
}

// secrets are values that must never be printed.
func secrets(env Env) []string {
	var s []string
	for _, name := range []string{"CLUSTER_SSH_KEY_PASSPHRASE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "NGC_API_KEY", "GITHUB_TOKEN"} {
		if v := env.Getenv(name); v != "" {
			s = append(s, v)
		}
	}
	return s
}
