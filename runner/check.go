package runner

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/disagg-runner/disagg-runner/internal/checklist"
	"github.com/disagg-runner/disagg-runner/internal/launch"
	"github.com/disagg-runner/disagg-runner/internal/shellquote"
	"github.com/disagg-runner/disagg-runner/internal/transport"
)

// Connector opens the run's one transport (SSH, or local on the login
// node). The CLI decides which.
type Connector func(ctx context.Context) (transport.Transport, error)

// Check runs the checklist. With a connector it also checks the cluster
// and returns the open transport for the run to reuse (one connection per
// run). The plan is nil when the local items did not allow making one.
func Check(ctx context.Context, s Settings, connect Connector) (*checklist.Report, *Plan, transport.Transport) {
	r := &checklist.Report{}
	required := []struct{ name, value, fix string }{
		{"CLUSTER_PARTITION", s.Partition, "set CLUSTER_PARTITION to the Slurm partition (sinfo -s lists them)"},
		{"CLUSTER_ACCOUNT", s.Account, "set CLUSTER_ACCOUNT to your Slurm account (sacctmgr show assoc user=$USER)"},
		{"DOCKER_IMAGE", s.DockerImage, "set DOCKER_IMAGE to the TensorRT-LLM container image, e.g. nvcr.io/nvidia/tensorrt-llm/release:<tag>"},
		{"CLUSTER_LLM_DATA", s.LLMData, "set CLUSTER_LLM_DATA to the models root on the cluster"},
		{"TRTLLM_DIR", s.TRTLLMDir, "set TRTLLM_DIR to the TensorRT-LLM checkout on this machine"},
		{"CONFIG_NAME", s.ConfigName, "set CONFIG_NAME to the config YAML's base name (without .yaml)"},
		{"CLUSTER_WORKDIR", s.ClusterWork, "set CLUSTER_WORKDIR to a folder on the cluster's shared file system"},
	}
	allSet := true
	for _, v := range required {
		if v.value == "" {
			allSet = false
			r.Add(checklist.Item{Name: v.name + " set", Detail: "not set", Fix: v.fix})
		} else {
			r.Add(checklist.Item{Name: v.name + " set", OK: true, Detail: v.value})
		}
	}
	mpiDetail := s.MPIType
	if s.MPIType == "pmix" {
		mpiDetail = "pmix (the default)"
	}
	r.Add(checklist.Item{Name: "MPI_TYPE", OK: s.MPIType != "", Detail: mpiDetail, Fix: "set MPI_TYPE to an srun --mpi plugin (pmix)"})

	checkout := s.TRTLLMDir != "" && isDir(filepath.Join(s.TRTLLMDir, "jenkins")) && isDir(filepath.Join(s.TRTLLMDir, "tests"))
	r.Add(checklist.Item{Name: "TRTLLM_DIR is a checkout root", OK: checkout, Detail: s.TRTLLMDir,
		Fix: "point TRTLLM_DIR at the folder that holds jenkins/ and tests/ of a TensorRT-LLM checkout"})
	r.Add(workspaceItem(s.Workspace))
	draft := s.draftPath()
	r.Add(checklist.Item{Name: "draft launch script exists", OK: isFile(draft), Detail: draft,
		Fix: "check out a TensorRT-LLM revision that has " + launch.DraftPath + ", or set DRAFT_LAUNCH_SH"})

	var p *Plan
	if s.TRTLLMDir != "" && s.ConfigName != "" {
		var err error
		p, err = loadConfig(s)
		if err != nil {
			kind := checklist.Input
			if strings.HasPrefix(err.Error(), "Config file not found") {
				kind = checklist.Prerequisite
			}
			r.Add(checklist.Item{Name: "config YAML valid", Kind: kind, Detail: err.Error(), Fix: "fix the config file or CONFIG_NAME as the message says"})
			p = nil
		} else {
			r.Add(checklist.Item{Name: "config YAML valid", OK: true, Detail: fmt.Sprintf("%s (%s; %d nodes, %d GPUs)", p.ConfigPath, p.Profile, p.Hardware.TotalNodes, p.Hardware.TotalGPUs)})
			for _, sec := range []string{"hardware", "worker_config", "environment", "benchmark"} {
				if !p.Config.Sections[sec] {
					r.Add(checklist.Item{Name: "config has " + sec, Kind: checklist.Input, Detail: "missing in " + p.ConfigPath, Fix: "add the " + sec + " section to the config YAML"})
				}
			}
		}
	} else {
		r.Add(checklist.Item{Name: "config YAML valid", Detail: "not checked: TRTLLM_DIR or CONFIG_NAME missing", Fix: "set TRTLLM_DIR and CONFIG_NAME"})
	}
	// launch.sh can only be generated once every input is there; a missing
	// one was reported above.
	if p != nil && allSet {
		if err := p.buildLaunch(); err != nil {
			r.Add(checklist.Item{Name: "launch.sh generates", Kind: checklist.Input, Detail: err.Error(), Fix: "fix the input named in the message"})
			p = nil
		} else if missing := p.Launch.Contract; len(missing) > 0 {
			r.Add(checklist.Item{Name: "draft matches profile", Kind: checklist.Input, Detail: launch.FormatMissing(draft, p.Profile, missing),
				Fix: "use the draft of the same TensorRT-LLM era, or choose the other profile with DISAGG_PROFILE"})
		} else {
			r.Add(checklist.Item{Name: "draft matches profile", OK: true, Detail: string(p.Profile)})
		}
	} else {
		p = nil
	}
	if connect == nil {
		return r, p, nil
	}

	t, err := connect(ctx)
	if err != nil {
		r.Add(checklist.Item{Name: "login node reachable", Kind: checklist.Connection, Detail: err.Error(), Fix: "check CLUSTER_HOST/CLUSTER_PORT/CLUSTER_USER, the key and CLUSTER_KNOWN_HOSTS (the message says which)"})
		return r, p, nil
	}
	detail := t.String() + " (host key verified)"
	if _, local := t.(transport.Local); local {
		detail = "local: this machine is the login node (no SSH)"
	}
	r.Add(checklist.Item{Name: "login node reachable", OK: true, Detail: detail})
	checkCluster(ctx, r, s, p, t)
	return r, p, t
}

func workspaceItem(ws string) checklist.Item {
	it := checklist.Item{Name: "WORKSPACE writable", Detail: ws, Fix: "create the folder or point WORKSPACE at a writable one"}
	if !isDir(ws) {
		it.Detail = ws + ": no such folder"
		return it
	}
	f, err := os.CreateTemp(ws, ".disagg-runner-check-*")
	if err != nil {
		it.Detail = err.Error()
		return it
	}
	f.Close()
	os.Remove(f.Name())
	it.OK = true
	return it
}

// remote runs a check command and returns its trimmed stdout.
func remote(ctx context.Context, t transport.Transport, cmd string) (string, error) {
	var out, errb bytes.Buffer
	err := t.Run(ctx, cmd, nil, &out, &errb)
	if err != nil && errb.Len() > 0 {
		return strings.TrimSpace(out.String()), fmt.Errorf("%s", strings.TrimSpace(lastLine(errb.String())))
	}
	return strings.TrimSpace(out.String()), err
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

var (
	kvTotalNodes = regexp.MustCompile(`\bTotalNodes=(\d+)`)
	kvState      = regexp.MustCompile(`\bState=(\S+)`)
	gresGPU      = regexp.MustCompile(`gpu(?::[^:(,\s]+)?:(\d+)`)
)

func checkCluster(ctx context.Context, r *checklist.Report, s Settings, p *Plan, t transport.Transport) {
	for _, cmd := range []string{"sbatch", "squeue", "sacct", "scontrol"} {
		where, err := remote(ctx, t, "command -v "+cmd)
		r.Add(checklist.Item{Name: cmd + " on the login node", OK: err == nil && where != "", Detail: orText(where, "not found"),
			Fix: "install the Slurm client on the login node or put it on the PATH of non-interactive shells"})
	}

	if s.Partition == "" || s.Account == "" {
		// Reported as unset above; asking Slurm about "" tells nothing.
		checkWorkdirAndScripts(ctx, r, s, t)
		return
	}
	part, err := remote(ctx, t, "scontrol show partition -o "+shellquote.Quote(s.Partition))
	partOK := err == nil && strings.HasPrefix(part, "PartitionName=")
	detail := s.Partition
	if !partOK {
		detail = s.Partition + ": " + orText(errText(err), "unknown partition")
	} else if m := kvState.FindStringSubmatch(part); m != nil && m[1] != "UP" {
		partOK, detail = false, s.Partition+" is "+m[1]
	}
	r.Add(checklist.Item{Name: "partition exists", Kind: checklist.Submission, OK: partOK, Detail: detail, Fix: "set CLUSTER_PARTITION to an UP partition (sinfo -s lists them)"})

	acct, err := remote(ctx, t, "sacctmgr -n -P show assoc where account="+shellquote.Quote(s.Account)+" format=account 2>&1")
	switch {
	case strings.Contains(acct, "accounting storage is disabled") || strings.Contains(acct, "slurmdbd") && err != nil:
		r.Add(checklist.Item{Name: "account exists", OK: true, Detail: s.Account + " (not checkable: the cluster has no accounting, so accounts are not enforced)"})
	case err == nil && strings.Contains("\n"+acct+"\n", "\n"+s.Account+"\n"):
		r.Add(checklist.Item{Name: "account exists", OK: true, Detail: s.Account})
	default:
		r.Add(checklist.Item{Name: "account exists", Kind: checklist.Submission, Detail: s.Account + ": " + orText(acct, "no association"), Fix: "set CLUSTER_ACCOUNT to an account you belong to (sacctmgr show assoc user=$USER)"})
	}

	checkWorkdirAndScripts(ctx, r, s, t)
	checkFit(ctx, r, s, p, t, part, partOK)
}

func checkWorkdirAndScripts(ctx context.Context, r *checklist.Report, s Settings, t transport.Transport) {
	// Writable without writing: the folder itself when it exists, else the
	// nearest existing parent in which run would create it.
	wd := shellquote.Quote(s.ClusterWork)
	_, err := remote(ctx, t, `d=`+wd+`; while [ ! -e "$d" ]; do d=$(dirname -- "$d"); done; [ -d "$d" ] && [ -w "$d" ] && [ -x "$d" ] || { echo "$d is not a writable folder" >&2; exit 1; }`)
	r.Add(checklist.Item{Name: "CLUSTER_WORKDIR writable", OK: err == nil, Detail: s.ClusterWork + prefixed(": ", errText(err)),
		Fix: "create CLUSTER_WORKDIR on the cluster's shared file system, writable by CLUSTER_USER"})

	// The nodes run the checkout's own scripts, so the checkout must be
	// there; a script missing from a checkout that is there is uploaded.
	nodeDir := s.nodeDir()
	_, err = remote(ctx, t, "test -d "+shellquote.Quote(path.Join(nodeDir, "jenkins/scripts")))
	nodeOK := err == nil
	r.Add(checklist.Item{Name: "TRTLLM_NODE_DIR on the cluster", OK: nodeOK, Detail: nodeDir + prefixed(": ", orText(errText(err), "")),
		Fix: "set TRTLLM_NODE_DIR to the TensorRT-LLM checkout as the login node and the nodes see it (it must hold jenkins/scripts)"})
	for _, script := range []struct{ name, path string }{{"run script", s.runSh()}, {"install script", s.installSh()}} {
		_, err := remote(ctx, t, "test -f "+shellquote.Quote(script.path))
		ok := err == nil
		detail := script.path
		if !ok && nodeOK && strings.HasPrefix(script.path, strings.TrimSuffix(nodeDir, "/")+"/") && isFile(s.localPath(script.path)) {
			ok, detail = true, script.path+" (missing in the cluster's checkout; uploaded from "+s.localPath(script.path)+" at submission)"
		}
		r.Add(checklist.Item{Name: script.name + " exists", OK: ok, Detail: detail, Fix: "set TRTLLM_NODE_DIR to the checkout as the nodes see it, or RUN_SH/INSTALL_SH"})
	}
}

func checkFit(ctx context.Context, r *checklist.Report, s Settings, p *Plan, t transport.Transport, part string, partOK bool) {

	if p == nil || !partOK {
		return
	}
	nodes := 0
	if m := kvTotalNodes.FindStringSubmatch(part); m != nil {
		nodes, _ = strconv.Atoi(m[1])
	}
	gres, _ := remote(ctx, t, "sinfo -h -N -p "+shellquote.Quote(s.Partition)+" -o '%N %G'")
	gpuNodes := map[string]bool{}
	for _, l := range strings.Split(gres, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		if m := gresGPU.FindStringSubmatch(f[1]); m != nil {
			if n, _ := strconv.Atoi(m[1]); n >= p.Hardware.GPUsPerNode {
				gpuNodes[f[0]] = true
			}
		}
	}
	need := p.Hardware.TotalNodes
	ok := nodes >= need && len(gpuNodes) >= need
	r.Add(checklist.Item{Name: "job fits the partition", Kind: checklist.Submission, OK: ok,
		Detail: fmt.Sprintf("needs %d nodes with %d GPUs each; %s has %d nodes, %d with at least %d GPUs", need, p.Hardware.GPUsPerNode, s.Partition, nodes, len(gpuNodes), p.Hardware.GPUsPerNode),
		Fix:    "choose a partition with enough GPU nodes, or a config that needs fewer"})
}

func orText(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
