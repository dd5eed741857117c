package sbatch

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/disagg-runner/disagg-runner/internal/lazyre"
	"github.com/disagg-runner/disagg-runner/internal/shellquote"
)

// ProbeRequest names what the checklist wants to know about the cluster.
// Empty fields are not asked about.
type ProbeRequest struct {
	Partition, Account string
	Workdir            string   // where job workspaces are created
	NodeDir            string   // the checkout as the nodes see it
	Files              []string // files whose presence is asked (run and install scripts)
}

// Facts are the cluster's answers. They are facts, not verdicts: the
// runner decides what each means for a run.
type Facts struct {
	// Commands maps each Slurm command the runner uses to its path on the
	// login node, "" when it is not on the PATH of a non-interactive shell.
	Commands  map[string]string
	Partition PartitionFacts
	Account   AccountFacts
	// GPUs maps each node of the partition to its GPU count (from GRES).
	GPUs map[string]int
	// WorkdirProblem is "" when Workdir (or the nearest existing parent in
	// which it would be created) is a writable folder.
	WorkdirProblem string
	NodeDirPresent bool // NodeDir holds jenkins/scripts
	FilePresent    []bool
}

// PartitionFacts are scontrol's answer about the partition.
type PartitionFacts struct {
	Found      bool
	State      string // UP, DOWN, DRAIN, INACTIVE
	TotalNodes int
	Problem    string // scontrol's error line when not found
}

// AccountFacts are sacctmgr's answer about the account.
type AccountFacts struct {
	// Checkable is false on a cluster without accounting storage, where
	// accounts are not enforced and cannot be listed.
	Checkable bool
	Found     bool
	Answer    string // what sacctmgr printed, for the message
}

// probeCommands are the Slurm commands the runner runs on the login node.
var probeCommands = []string{"sbatch", "squeue", "sacct", "scontrol"}

// Probe asks every question of req in one remote command (one round trip:
// a session costs far more than the questions), and parses the answers.
func (c *Client) Probe(ctx context.Context, req ProbeRequest) (Facts, error) {
	out, err := c.run(ctx, probeScript(req))
	if err != nil {
		return Facts{}, commandError("probe the cluster", out, err)
	}
	return parseProbe(req, out.stdout)
}

// probeScript prints each answer under a "::name" marker line. Every value
// from req is quoted; section names are fixed words or indexes, so no
// answer can forge a marker of its own from our inputs.
func probeScript(req ProbeRequest) string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	for _, cmd := range probeCommands {
		line("echo ::command %s; command -v %s", cmd, cmd)
	}
	if req.Partition != "" {
		p := shellquote.Quote(req.Partition)
		// -a: a hidden partition is as good as any to submit to, but
		// scontrol says "not found" without it for anyone but root. sinfo
		// shows a partition named with -p, and refuses -a with it.
		line("echo ::partition; scontrol -a show partition -o %s 2>&1", p)
		line("echo ::gres; sinfo -h -N -p %s -o '%%N %%G' 2>&1", p)
	}
	if req.Account != "" {
		line("echo ::account; sacctmgr -n -P show assoc where account=%s format=account 2>&1; echo \"::account-rc $?\"", shellquote.Quote(req.Account))
	}
	if req.Workdir != "" {
		// Writable without writing: the folder itself when it exists, else
		// the nearest existing parent in which it would be created.
		line(`echo ::workdir; d=%s; while [ ! -e "$d" ]; do d=$(dirname -- "$d"); done; if [ -d "$d" ] && [ -w "$d" ] && [ -x "$d" ]; then echo ok; else echo "$d is not a writable folder"; fi`, shellquote.Quote(req.Workdir))
	}
	if req.NodeDir != "" {
		line("echo ::nodedir; test -d %s && echo ok", shellquote.Quote(strings.TrimSuffix(req.NodeDir, "/")+"/jenkins/scripts"))
	}
	for i, f := range req.Files {
		line("echo ::file %d; test -f %s && echo ok", i, shellquote.Quote(f))
	}
	line("echo ::end")
	return b.String()
}

var (
	kvTotalNodes = lazyre.New(`\bTotalNodes=(\d+)`)
	kvState      = lazyre.New(`\bState=(\S+)`)
	gresGPU      = lazyre.New(`gpu(?::[^:(,\s]+)?:(\d+)`)
)

// parseProbe reads the sections probeScript printed. A missing ::end means
// the script was cut short, which is an error rather than a set of
// negative answers.
func parseProbe(req ProbeRequest, out string) (Facts, error) {
	sections := map[string][]string{}
	var order []string
	cur := ""
	for _, l := range strings.Split(out, "\n") {
		if name, ok := strings.CutPrefix(l, "::"); ok {
			cur = name
			order = append(order, name)
			sections[cur] = sections[cur][:0]
			continue
		}
		if cur != "" && strings.TrimSpace(l) != "" {
			sections[cur] = append(sections[cur], strings.TrimSpace(l))
		}
	}
	if len(order) == 0 || order[len(order)-1] != "end" {
		return Facts{}, fmt.Errorf("probe the cluster: the answer ended early: %q", firstChars(out, 200))
	}
	f := Facts{Commands: map[string]string{}, GPUs: map[string]int{}, FilePresent: make([]bool, len(req.Files))}
	for _, cmd := range probeCommands {
		f.Commands[cmd] = strings.Join(sections["command "+cmd], " ")
	}
	if req.Partition != "" {
		part := strings.Join(sections["partition"], " ")
		if strings.HasPrefix(part, "PartitionName=") {
			f.Partition.Found = true
			if m := kvState.FindStringSubmatch(part); m != nil {
				f.Partition.State = m[1]
			}
			if m := kvTotalNodes.FindStringSubmatch(part); m != nil {
				f.Partition.TotalNodes, _ = strconv.Atoi(m[1])
			}
		} else {
			f.Partition.Problem = lastLine(strings.Join(sections["partition"], "\n"))
		}
		for _, l := range sections["gres"] {
			fields := strings.Fields(l)
			if len(fields) < 2 {
				continue
			}
			n := 0
			if m := gresGPU.FindStringSubmatch(fields[1]); m != nil {
				n, _ = strconv.Atoi(m[1])
			}
			f.GPUs[fields[0]] = max(f.GPUs[fields[0]], n)
		}
	}
	if req.Account != "" {
		answer := sections["account"]
		f.Account.Answer = strings.Join(answer, "; ")
		rc := strings.Join(sectionsWithPrefix(order, "account-rc "), "")
		disabled := strings.Contains(f.Account.Answer, "accounting storage is disabled") ||
			rc != "0" && strings.Contains(f.Account.Answer, "slurmdbd")
		f.Account.Checkable = !disabled
		for _, a := range answer {
			if a == req.Account {
				f.Account.Found = true
			}
		}
	}
	if req.Workdir != "" {
		if w := sections["workdir"]; len(w) != 1 || w[0] != "ok" {
			f.WorkdirProblem = strings.Join(w, "; ")
			if f.WorkdirProblem == "" {
				f.WorkdirProblem = "cannot tell whether it is writable"
			}
		}
	}
	f.NodeDirPresent = isOK(sections["nodedir"])
	for i := range req.Files {
		f.FilePresent[i] = isOK(sections[fmt.Sprintf("file %d", i)])
	}
	return f, nil
}

// sectionsWithPrefix returns the rest of every marker that starts with p
// (the marker carries the value, as "::account-rc 0" does).
func sectionsWithPrefix(order []string, p string) []string {
	var vals []string
	for _, name := range order {
		if v, ok := strings.CutPrefix(name, p); ok {
			vals = append(vals, v)
		}
	}
	return vals
}

func isOK(lines []string) bool { return len(lines) == 1 && lines[0] == "ok" }
