package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/disagg-runner/disagg-runner/internal/checkoutgen"
	"github.com/disagg-runner/disagg-runner/internal/inputfile"
	"github.com/disagg-runner/disagg-runner/internal/launch"
	"github.com/disagg-runner/disagg-runner/prefix"
	"github.com/disagg-runner/disagg-runner/sbatch"
)

// Check is the `check` command: the local half of the checklist, then,
// with a connector, the cluster half over one connection, which it closes.
func Check(ctx context.Context, s Settings, connect Connector) *Report {
	r, p := checkWithoutCluster(ctx, s)
	checkOnCluster(ctx, r, s, p, connect)
	return r
}

// checkWithoutCluster is the local half of `check`: checkLocal, and
// launch.sh rendered and compared.
func checkWithoutCluster(ctx context.Context, s Settings) (*Report, *Plan) {
	r, p := checkLocal(s)
	if p != nil {
		res, it := generateItem(ctx, s, p)
		r.Add(it)
		if p.Profile == launch.V3 && !p.Checkout {
			r.Add(ucxItem(s))
		}
		if res != nil && !p.Checkout {
			r.Add(compareItem(ctx, s, p, res.Script))
		}
	}
	return r, p
}

// checkOnCluster adds the cluster half over one connection (none
// without a connector), which it closes.
func checkOnCluster(ctx context.Context, r *Report, s Settings, p *Plan, connect Connector) {
	if connect == nil {
		return
	}
	c, err := connect(ctx)
	r.Add(reachableItem(s, c, err))
	if err != nil {
		return
	}
	defer c.Close()
	checkCluster(ctx, r, s, p, c)
}

// CheckMany is `check` for the tests of a run of several: each test's
// local half, an item that comes out the same for every test (the
// checkout, the workspace, the settings) once, one that differs (the
// config, launch.sh) once per test and named after it; then the cluster
// half once, the partition's fit judged for the largest test.
func CheckMany(ctx context.Context, tests []Settings, connect Connector) *Report {
	type seen struct {
		items []Item // per test, nil where the test has no such item
	}
	var order []string
	byName := map[string]*seen{}
	plans := make([]*Plan, len(tests))
	for i, s := range tests {
		r, p := checkWithoutCluster(ctx, s)
		plans[i] = p
		for _, it := range r.Items {
			e := byName[it.Name]
			if e == nil {
				e = &seen{items: make([]Item, len(tests))}
				byName[it.Name] = e
				order = append(order, it.Name)
			}
			e.items[i] = it
		}
	}
	out := &Report{}
	for _, name := range order {
		e := byName[name]
		same := true
		for _, it := range e.items {
			if it != e.items[0] {
				same = false
			}
		}
		if same {
			out.Add(e.items[0])
			continue
		}
		for i, it := range e.items {
			if it.Name != "" {
				it.Name = tests[i].Test + ": " + it.Name
				out.Add(it)
			}
		}
	}
	s, p := tests[0], (*Plan)(nil)
	if i := largestPlan(plans); i >= 0 {
		s, p = tests[i], plans[i]
	}
	checkOnCluster(ctx, out, s, p, connect)
	return out
}

// checkLocal is the local half of the checklist, which needs no cluster:
// the settings, the checkout, the workspace, the config. It returns the
// plan when the inputs allow making one (nil otherwise).
func checkLocal(s Settings) (*Report, *Plan) {
	r := &Report{}
	allSet := checkSet(r, s)
	checkout := s.TRTLLMDir != "" && isDir(filepath.Join(s.TRTLLMDir, "jenkins")) && isDir(filepath.Join(s.TRTLLMDir, "tests"))
	r.Add(Item{Name: s.name(FieldCheckout) + " is a checkout root", OK: checkout, Detail: s.TRTLLMDir,
		Fix: "point " + s.name(FieldCheckout) + " at the folder that holds jenkins/ and tests/ of a TensorRT-LLM checkout"})
	r.Add(workspaceItem(s))
	pathsOK := checkPaths(r, s)
	p := planPaths(s)
	r.Add(Item{Name: "draft launch script exists", OK: isFile(p.DraftPath), Detail: fileDetail(p.DraftPath),
		Fix: "check out a TensorRT-LLM revision that has " + launch.DraftPath + ", or set " + s.name(FieldDraft)})

	if s.TRTLLMDir == "" || s.ConfigName == "" {
		r.Add(Item{Name: "config YAML valid", Detail: "not checked: " + s.name(FieldCheckout) + " or " + s.name(FieldConfig) + " missing",
			Fix: "set " + s.name(FieldCheckout) + " and " + s.name(FieldConfig)})
		return r, nil
	}
	if err := p.loadConfig(s); err != nil {
		kind := Input
		var missing *missingConfig
		if errors.As(err, &missing) {
			kind = Prerequisite
		}
		r.Add(Item{Name: "config YAML valid", Kind: kind, Detail: err.Error(), Fix: "fix the config file or " + s.name(FieldConfig) + " as the message says"})
		return r, nil
	}
	profile := string(p.Profile)
	if p.Checkout {
		profile = checkoutgen.Profile + ": " + profile + " layout"
	}
	r.Add(Item{Name: "config YAML valid", OK: true, Detail: fmt.Sprintf("%s (%s; %d nodes, %d GPUs)", p.ConfigPath, profile, p.Hardware.TotalNodes, p.Hardware.TotalGPUs)})
	for _, sec := range []string{"hardware", "worker_config", "environment", "benchmark"} {
		if !p.Config.Sections[sec] {
			r.Add(Item{Name: "config has " + sec, Kind: Input, Detail: "missing in " + p.ConfigPath, Fix: "add the " + sec + " section to the config YAML"})
		}
	}
	// The generator's inputs can only be made once every setting is there;
	// a missing one was reported above.
	if !allSet || !pathsOK {
		return r, nil
	}
	if err := p.buildInputs(s); err != nil {
		r.Add(Item{Name: "generator inputs valid", Kind: Input, Detail: err.Error(), Fix: "fix the input named in the message"})
		return r, nil
	}
	r.Add(Item{Name: "generator inputs valid", OK: true, Detail: p.Files.TestID})
	if s.WantTestID != "" && s.WantTestID != p.Files.TestID {
		r.Add(Item{Name: "test id as listed", Kind: Input, Detail: fmt.Sprintf("%s lists %s, but config %s (%s) makes %s", s.WantFrom, s.WantTestID, s.ConfigName, p.Profile, p.Files.TestID),
			Fix: "list the config name, or the test id it makes"})
		return r, nil
	}
	return r, p
}

// checkSet reports the settings a run cannot do without, and the MPI
// type; it returns whether every required one is set.
func checkSet(r *Report, s Settings) (allSet bool) {
	required := []struct {
		field Field
		value string
		fix   string
	}{
		{FieldPartition, s.Partition, "to the Slurm partition (sinfo -s lists them)"},
		{FieldAccount, s.Account, "to your Slurm account (sacctmgr show assoc user=$USER)"},
		{FieldImage, s.DockerImage, "to the TensorRT-LLM container image, e.g. nvcr.io/nvidia/tensorrt-llm/release:<tag>"},
		{FieldModelsRoot, s.LLMData, "to the models root on the cluster"},
		{FieldCheckout, s.TRTLLMDir, "to the TensorRT-LLM checkout on this machine"},
		{FieldConfig, s.ConfigName, "to the config YAML's base name (without .yaml)"},
		{FieldClusterWork, s.ClusterWork, "to a folder on the cluster's shared file system"},
	}
	allSet = true
	for _, v := range required {
		it := Item{Name: s.name(v.field) + " set", OK: v.value != "", Detail: v.value}
		if !it.OK {
			allSet = false
			it.Detail, it.Fix = "not set", "set "+s.name(v.field)+" "+v.fix
		}
		r.Add(it)
	}
	mpiDetail := s.MPIType
	if s.MPIType == "pmix" {
		mpiDetail = "pmix (the default)"
	}
	r.Add(Item{Name: s.name(FieldMPIType), OK: s.MPIType != "", Detail: mpiDetail, Fix: "set " + s.name(FieldMPIType) + " to an srun --mpi plugin (pmix)"})
	return allSet
}

// checkPaths reports the values the run's folders are made of: the
// workdir's own value (before the job workspace made from it is judged,
// which would show the run id appended) and the run id. It returns
// whether both are usable.
func checkPaths(r *Report, s Settings) bool {
	ok := true
	if s.ClusterWork != "" {
		if err := prefix.CheckAbsPath(s.name(FieldClusterWork), s.ClusterWork); err != nil {
			ok = false
			r.Add(Item{Name: s.name(FieldClusterWork) + " valid", Kind: Input, Detail: err.Error(),
				Fix: "set " + s.name(FieldClusterWork) + " to an absolute path on the cluster's shared file system"})
		}
	}
	if err := CheckRunID(s.RunID); err != nil {
		ok = false
		r.Add(Item{Name: s.name(FieldRunID) + " valid", Kind: Input, Detail: err.Error(),
			Fix: "set " + s.name(FieldRunID) + " to one folder name, or leave it unset to have one made"})
	}
	return ok
}

// generateItem renders launch.sh (in memory; with profile checkout in a
// temporary folder) and reports whether the draft uses only variables the
// profile defines (the contract check), naming the generation and how it
// was chosen. It returns the result when launch.sh generates.
func generateItem(ctx context.Context, s Settings, p *Plan) (*launch.Result, Item) {
	profile, dir := p.generatorProfile(), ""
	if p.Checkout {
		var err error
		if dir, err = tempInputs(p); err != nil {
			return nil, Item{Name: "launch.sh generates", Detail: err.Error(), Fix: "make the temporary folder ($TMPDIR) writable"}
		}
		defer os.RemoveAll(dir)
	}
	res, err := p.render(ctx, s, dir)
	switch {
	case err != nil:
		return nil, renderFailed(s, err)
	case len(res.Contract) > 0:
		return res, Item{Name: "draft matches profile", Kind: Input, Detail: launch.FormatMissing(p.DraftPath, profile, res.Contract),
			Fix: "use the draft of the same TensorRT-LLM era, or choose the other profile with " + s.name(FieldProfile)}
	}
	return res, Item{Name: "draft matches profile", OK: true, Detail: fmt.Sprintf("%s (%s)", profile, p.ProfileWhy)}
}

// renderFailed is the item of a launch.sh that did not generate: bad
// input, or with profile checkout a generator that cannot run here.
func renderFailed(s Settings, err error) Item {
	var missing *checkoutgen.MissingError
	if errors.As(err, &missing) {
		return Item{Name: "launch.sh generates", Kind: Prerequisite, Detail: err.Error(),
			Fix: "install what the message names, or leave " + s.name(FieldProfile) + " unset to use disagg-runner's own generator"}
	}
	it := Item{Name: "launch.sh generates", Kind: Input, Detail: err.Error(), Fix: "fix the input named in the message"}
	var root *launch.ModelsRootError
	if errors.As(err, &root) && s.PytestCommand != "" {
		it.Detail += fmt.Sprintf(" (%s replaces the runner's pytest line, which sets LLM_MODELS_ROOT to %s: start it with LLM_MODELS_ROOT=<models root>)", s.name(FieldPytestCommand), s.name(FieldModelsRoot))
	}
	return it
}

// ucxItem says which row of perf-sanity-v3's cluster table (UCX settings)
// the cluster name selects.
func ucxItem(s Settings) Item {
	it := Item{Name: "UCX settings by cluster name", OK: true}
	row := launch.UCXRow(s.ClusterName)
	switch {
	case row != "":
		it.Detail = fmt.Sprintf("UCX: %s row (%s=%s)", row, s.name(FieldClusterName), s.ClusterName)
	case s.ClusterName == "":
		it.Detail = fmt.Sprintf("no cluster row: defaults (%s not set)", s.name(FieldClusterName))
	default:
		it.Detail = fmt.Sprintf("no cluster row: defaults (%s=%s starts with none of %s)", s.name(FieldClusterName), s.ClusterName, strings.Join(launch.UCXRows(), ", "))
	}
	return it
}

// compareItem runs the checkout's own generator on the same inputs and
// compares its launch.sh with ours: the guard against a generation
// disagg-runner does not know. Where it cannot run (no python3, PyYAML or
// generator), the item passes and says so.
func compareItem(ctx context.Context, s Settings, p *Plan, ours []byte) Item {
	it := Item{Name: "launch.sh matches the checkout's submit.py", Kind: Input,
		Fix: "this checkout's generator is of a generation disagg-runner does not know: set " + s.name(FieldProfile) + "=" + checkoutgen.Profile + " to use it as it is, or use a newer disagg-runner"}
	dir, err := tempInputs(p)
	if err != nil {
		it.Detail, it.Kind, it.Fix = err.Error(), Prerequisite, "make the temporary folder ($TMPDIR) writable"
		return it
	}
	defer os.RemoveAll(dir)
	theirs, err := checkoutgen.Run(ctx, p.checkoutRequest(s, dir))
	var missing *checkoutgen.MissingError
	switch {
	case errors.As(err, &missing):
		it.OK, it.Detail = true, "not checked: "+missing.Detail
		return it
	case err != nil:
		it.Detail = fmt.Sprintf("disagg-runner's generator succeeded, but %v", err)
		return it
	}
	d := checkoutgen.Compare(ours, theirs.Script)
	if d == nil {
		it.OK, it.Detail = true, fmt.Sprintf("identical to what %s writes (%s)", theirs.Generator, theirs.Python)
		return it
	}
	it.Detail = fmt.Sprintf("differs from what %s writes, first at line %d: disagg-runner %s, submit.py %s",
		theirs.Generator, d.Line, shortLine(d.Ours, d.OursMissing), shortLine(d.Theirs, d.TheirsMissing))
	return it
}

// tempInputs writes the generator's inputs into a new temporary folder,
// for the checkout's generator, which reads files.
func tempInputs(p *Plan) (string, error) {
	dir, err := os.MkdirTemp("", "disagg-runner-check-")
	if err != nil {
		return "", err
	}
	if err := p.writeInputsTo(dir); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// shortLine shows a line of a differing launch.sh in one table cell.
func shortLine(line string, missing bool) string {
	if missing {
		return "(no such line)"
	}
	if r := []rune(line); len(r) > 100 {
		line = string(r[:100]) + "..."
	}
	return strconv.Quote(line)
}

// fileDetail is a path, and when it is there but no usable file, why.
func fileDetail(p string) string {
	if err := inputfile.Check(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return p + ": " + pathErrorCause(err).Error()
	}
	return p
}

func workspaceItem(s Settings) Item {
	ws := s.Workspace
	it := Item{Name: s.name(FieldWorkspace) + " writable", Detail: ws, Fix: "create the folder or point " + s.name(FieldWorkspace) + " at a writable one"}
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

func reachableItem(s Settings, c Cluster, err error) Item {
	if err != nil {
		return Item{Name: "login node reachable", Kind: Connection, Detail: err.Error(),
			Fix: "check " + s.name(FieldCluster) + ", the key and the known_hosts file (the message says which)"}
	}
	detail := c.String() + " (host key verified)"
	if c.String() == "local" {
		detail = "local: this machine is the login node (no SSH)"
	}
	return Item{Name: "login node reachable", OK: true, Detail: detail}
}

// checkCluster is the cluster half of the checklist: one probe, whose
// facts become items. p may be nil (the fit of the job is then not
// judged). It returns the node paths of the scripts that the cluster's
// checkout lacks and this machine's checkout supplies: the run uploads
// them.
func checkCluster(ctx context.Context, r *Report, s Settings, p *Plan, c Cluster) (upload []string) {
	paths := planPaths(s)
	req := sbatch.ProbeRequest{Partition: s.Partition, Account: s.Account, Workdir: s.ClusterWork, NodeDir: paths.NodeDir,
		Files: []string{paths.RunSh, paths.InstallSh}}
	f, err := c.Probe(ctx, req)
	if err != nil {
		r.Add(Item{Name: "cluster answers", Kind: Connection, Detail: err.Error(), Fix: "run the Slurm commands by hand on the login node to see why"})
		return nil
	}
	for _, cmd := range []string{"sbatch", "squeue", "sacct", "scontrol"} {
		where := f.Commands[cmd]
		r.Add(Item{Name: cmd + " on the login node", OK: where != "", Detail: orText(where, "not found"),
			Fix: "install the Slurm client on the login node or put it on the PATH of non-interactive shells"})
	}
	if s.Partition != "" {
		r.Add(partitionItem(s, f.Partition))
	}
	if s.Account != "" {
		r.Add(accountItem(s, f.Account))
	}
	r.Add(Item{Name: s.name(FieldClusterWork) + " writable", OK: f.WorkdirProblem == "", Detail: s.ClusterWork + prefixed(": ", f.WorkdirProblem),
		Fix: "create " + s.name(FieldClusterWork) + " on the cluster's shared file system, writable by the SSH user"})
	r.Add(Item{Name: s.name(FieldNodeCheckout) + " on the cluster", OK: f.NodeDirPresent, Detail: paths.NodeDir + prefixed(": ", map[bool]string{false: "no jenkins/scripts there"}[f.NodeDirPresent]),
		Fix: "set " + s.name(FieldNodeCheckout) + " to the TensorRT-LLM checkout as the login node and the nodes see it (it must hold jenkins/scripts)"})
	for i, script := range []struct{ name, path string }{{"run script", paths.RunSh}, {"install script", paths.InstallSh}} {
		it, missing := scriptItem(s, paths, f.NodeDirPresent, script.name, script.path, f.FilePresent[i])
		r.Add(it)
		if missing {
			upload = append(upload, script.path)
		}
	}
	if p != nil && f.Partition.Found && f.Partition.State == "UP" {
		r.Add(fitItem(s, p, f))
	}
	return upload
}

func partitionItem(s Settings, pf sbatch.PartitionFacts) Item {
	it := Item{Name: "partition exists", Kind: Submission, OK: pf.Found && pf.State == "UP", Detail: s.Partition,
		Fix: "set " + s.name(FieldPartition) + " to an UP partition (sinfo -s lists them)"}
	switch {
	case !pf.Found:
		it.Detail = s.Partition + ": " + orText(pf.Problem, "unknown partition")
	case pf.State != "UP":
		it.Detail = s.Partition + " is " + pf.State
	}
	return it
}

func accountItem(s Settings, af sbatch.AccountFacts) Item {
	switch {
	case !af.Checkable:
		return Item{Name: "account exists", OK: true, Detail: s.Account + " (not checkable: the cluster has no accounting, so accounts are not enforced)"}
	case af.Found:
		return Item{Name: "account exists", OK: true, Detail: s.Account}
	}
	return Item{Name: "account exists", Kind: Submission, Detail: s.Account + ": " + orText(af.Answer, "no association"),
		Fix: "set " + s.name(FieldAccount) + " to an account you belong to (sacctmgr show assoc user=$USER)"}
}

// scriptItem passes a script missing from a checkout that is there when
// this machine's checkout has it (upload: the run uploads it).
func scriptItem(s Settings, p *Plan, nodeDirPresent bool, name, path string, present bool) (it Item, upload bool) {
	it = Item{Name: name + " exists", OK: present, Detail: path,
		Fix: "set " + s.name(FieldNodeCheckout) + " to the checkout as the nodes see it, or " + s.name(FieldRunScript) + "/" + s.name(FieldInstallScript)}
	if local, ok := p.localPath(s, path); !present && nodeDirPresent && ok && isFile(local) {
		it.OK, it.Detail, upload = true, path+" (missing in the cluster's checkout; uploaded from "+local+" at submission)", true
	}
	return it, upload
}

func fitItem(s Settings, p *Plan, f sbatch.Facts) Item {
	gpuNodes := 0
	for _, n := range f.GPUs {
		if n >= p.Hardware.GPUsPerNode {
			gpuNodes++
		}
	}
	need := p.Hardware.TotalNodes
	return Item{Name: "job fits the partition", Kind: Submission, OK: f.Partition.TotalNodes >= need && gpuNodes >= need,
		Detail: fmt.Sprintf("needs %d nodes with %d GPUs each; %s has %d nodes, %d with at least %d GPUs", need, p.Hardware.GPUsPerNode, s.Partition, f.Partition.TotalNodes, gpuNodes, p.Hardware.GPUsPerNode),
		Fix:    "choose a partition with enough GPU nodes, or a config that needs fewer"}
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
