package launch

import (
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/disagg-runner/disagg-runner/internal/config"
)

// Request names the generator's inputs, as submit.py's flags do.
type Request struct {
	Profile      Profile
	LLMSrc       string // checkout root, as given (may be relative)
	TestListPath string
	DraftPath    string
	PrefixPath   string
	SrunArgsPath string
	RunSh        string // node path of the run script, written into the script
	InstallSh    string // node path of the install script
	SplitGroup   int    // v2/v3: 1-based test number, 0 = first
	StageName    string // v2: selects UCX settings; v3: written as stageName
	// ClusterName is --cluster-name (v3: selects UCX settings; "" = none).
	ClusterName string
	// PrecheckSwitch is TRTLLM_DISAGG_CT_PRECHECK when it is set. v2: "1"
	// forces the precheck on, anything else off. v3: 1/true/on/yes or
	// 0/false/off/no in any case, anything else is an error. Nil: the YAML
	// decides.
	PrecheckSwitch *string
	// ModelsRootEnv is LLM_MODELS_ROOT in the submitter's environment ("" =
	// unset or empty). v3 falls back to it when the pytest line does not
	// assign LLM_MODELS_ROOT.
	ModelsRootEnv string

	// In-memory inputs, for callers that already hold them: when non-nil,
	// used instead of reading TestListPath, PrefixPath and SrunArgsPath
	// (the paths still name the inputs in messages).
	TestList, ScriptPrefix, SrunArgs []byte
	// Config, when non-nil, is used instead of reading and parsing the YAML
	// at the config path (which still names it in messages).
	Config *config.Config

	// Names turns an input's name (the Input constants) into the words
	// the caller's user knows: generate's flags, run's variables. nil
	// keeps the plain name.
	Names func(string) string
}

// The inputs an error can name, by what they are.
const (
	InputCheckout      = "checkout"
	InputTestList      = "test list"
	InputDraft         = "draft"
	InputScriptPrefix  = "script prefix"
	InputSrunArgs      = "srun args"
	InputRunScript     = "run script"
	InputInstallScript = "install script"
	InputStageName     = "stage name"
	InputSplitGroup    = "split group"
)

func (r Request) name(input string) string {
	if r.Names == nil {
		return input
	}
	return r.Names(input)
}

// ReadFunc reads one input file. A missing file must yield an error for
// which errors.Is(err, fs.ErrNotExist) holds.
type ReadFunc func(path string) ([]byte, error)

// Hardware is the layout computed from the config.
type Hardware struct {
	NumCtxServers, NumGenServers                     int
	GPUsPerNode, GPUsPerCtxServer, GPUsPerGenServer  int
	NodesPerCtxServer, NodesPerGenServer             int
	GPUsPerNodePerCtxServer, GPUsPerNodePerGenServer int
	TotalNodes, TotalGPUs                            int
}

// Result is a generated launch script and what was learned making it.
type Result struct {
	Script     []byte
	Profile    Profile
	TestID     TestID
	ConfigPath string
	Config     *config.Config
	Hardware   Hardware
	GenOnly    bool   // no CTX servers run (v1 gen-only, v2/v3 gen_only_no_context)
	OutputDir  string // v2/v3 testOutputDir; "" for v1
	// Warnings are notes upstream prints on stdout (e.g. the queue-size
	// cap, a model root v3 could not find for a skipped test).
	Warnings []string
	// Precheck is whether the cache-transceiver precheck runs (v2/v3:
	// ctPrecheckEnabled); Skipped whether v3 found the test SKIP-waived.
	Precheck, Skipped bool
	// Contract lists the variables the draft uses that nothing defines.
	Contract []MissingVar
}

// Generate builds launch.sh. It reads its inputs only through read, so it
// never touches the file system itself.
func Generate(req Request, read ReadFunc) (*Result, error) {
	switch req.Profile {
	case V1, V2, V3:
	default:
		return nil, fmt.Errorf("unknown profile %q: expected %s, %s or %s", req.Profile, V1, V2, V3)
	}
	if err := req.validate(); err != nil {
		return nil, err
	}
	if req.Profile == V3 {
		return generateV3(req, read)
	}
	testList, err := req.testList(read)
	if err != nil {
		return nil, err
	}
	id, err := ParseTestList(req.Profile, testList, req.TestListPath, req.SplitGroup)
	if err != nil {
		return nil, err
	}
	res := &Result{Profile: req.Profile, TestID: id, ConfigPath: ConfigPath(req.Profile, req.LLMSrc, id.ConfigName)}
	if req.Profile == V2 {
		if err := checkUnquotedPath(req.name(InputCheckout), req.LLMSrc); err != nil {
			return nil, err
		}
	}
	if res.Config, err = req.config(res.ConfigPath, id, read); err != nil {
		return nil, err
	}
	if req.Profile == V2 && res.Config.Precheck.V2Err != nil {
		return nil, res.Config.Precheck.V2Err
	}
	if err := checkEnvStrings(res.Config, res.ConfigPath); err != nil {
		return nil, err
	}
	prefix, err := req.prefix(read)
	if err != nil {
		return nil, err
	}
	srunArgs, err := req.srunArgs(read)
	if err != nil {
		return nil, err
	}
	draft, err := readInput(read, req.DraftPath, req.name(InputDraft))
	if err != nil {
		return nil, err
	}
	var gate []byte
	gatePath := ""
	if req.Profile == V2 {
		gatePath = pyJoin(path.Dir(req.DraftPath), GateFile)
		if gate, err = read(gatePath); err != nil {
			return nil, fmt.Errorf("precheck gate library %s not found at %s (perf-sanity-v2 needs it beside the draft): %w", GateFile, gatePath, unwrapPathError(err))
		}
	}

	prefixLines := strings.Split(string(prefix), "\n")
	var out []byte
	if req.Profile == V1 {
		out, err = renderV1(req, res, prefixLines, srunArgs, draft)
	} else {
		out, err = renderV2(req, res, prefixLines, srunArgs, draft, gate)
	}
	if err != nil {
		return nil, err
	}
	return finish(req, res, out, draft), nil
}

// finish records the script and checks the draft against it.
func finish(req Request, res *Result, out, draft []byte) *Result {
	res.Script = out
	res.Contract = CheckContract(ContractInput{
		Draft:     draft,
		Defined:   [][]byte{out[:len(out)-len(draftPart(req.Profile, draft))]},
		DraftPath: req.DraftPath,
	})
	return res
}

func (r Request) testList(read ReadFunc) ([]byte, error) {
	if r.TestList != nil {
		return r.TestList, nil
	}
	return readInput(read, r.TestListPath, r.name(InputTestList))
}

func (r Request) prefix(read ReadFunc) ([]byte, error) {
	if r.ScriptPrefix != nil {
		return r.ScriptPrefix, nil
	}
	return readInput(read, r.PrefixPath, r.name(InputScriptPrefix))
}

// srunArgs reads the srun options and checks each, as they are written
// inside double quotes.
func (r Request) srunArgs(read ReadFunc) ([]string, error) {
	raw := r.SrunArgs
	if raw == nil {
		var err error
		if raw, err = readInput(read, r.SrunArgsPath, r.name(InputSrunArgs)); err != nil {
			return nil, err
		}
	}
	args := pyFields(string(raw))
	for _, a := range args {
		if err := checkDoubleQuoted(r.SrunArgsPath, a); err != nil {
			return nil, err
		}
	}
	return args, nil
}

// config is the request's config, or the one read and parsed from path.
func (r Request) config(path string, id TestID, read ReadFunc) (*config.Config, error) {
	if r.Config != nil {
		return r.Config, nil
	}
	yamlBytes, err := read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("Config file not found: %s (from test id %q)", path, id.Bracket)
	} else if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return config.Parse(yamlBytes, path)
}

// draftPart is the draft as it ends up in the output, which is what the
// contract check must not count as a definition source twice.
func draftPart(p Profile, draft []byte) []byte {
	if p == V1 {
		return draft
	}
	return []byte(strings.Join(nonEmptyStripped(strings.Split(string(draft), "\n")), "\n"))
}

func readInput(read ReadFunc, path, input string) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("%s is required", input)
	}
	b, err := read(path)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", input, path, unwrapPathError(err))
	}
	return b, nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Layout computes the job's hardware layout as the profile's generator
// does, and whether it runs without CTX servers. testMode is the v2/v3
// test-id mode ("e2e", "gen_only", v3 also "gen_only_no_context"); v1
// ignores it and reads benchmark.mode.
func Layout(p Profile, c *config.Config, testMode, cfgPath string) (Hardware, bool, error) {
	genOnly := genOnlyWithoutContext(p, c, testMode)
	hw, err := computeHardware(p, c, genOnly, cfgPath)
	return hw, genOnly, err
}

func genOnlyWithoutContext(p Profile, c *config.Config, testMode string) bool {
	if p == V1 {
		mode := "e2e"
		if c.Benchmark.ModePresent {
			mode = c.Benchmark.Mode
		}
		return strings.Contains(mode, "gen_only")
	}
	if p == V3 && testMode == "gen_only_no_context" {
		return true
	}
	return testMode == "gen_only" && strings.Contains(c.Benchmark.Mode, "gen_only_no_context")
}

// computeHardware applies the layout formulas; genOnly forces the CTX
// count to 0 (it need not be configured then).
func computeHardware(p Profile, c *config.Config, genOnly bool, cfgPath string) (Hardware, error) {
	hw := c.Hardware
	if p != V1 && hw.GPUsPerNode == nil {
		return Hardware{}, fmt.Errorf("%s: hardware.gpus_per_node is required", cfgPath)
	}
	var missing []string
	if hw.GPUsPerNode == nil {
		missing = append(missing, "hardware.gpus_per_node")
	}
	if hw.NumGenServers == nil {
		missing = append(missing, "hardware.num_gen_servers")
	}
	if hw.NumCtxServers == nil && !genOnly {
		missing = append(missing, "hardware.num_ctx_servers")
	}
	if len(missing) > 0 {
		msg := "Missing required hardware configuration"
		if p != V1 {
			msg = "Missing required disagg hardware configuration"
		}
		return Hardware{}, fmt.Errorf("%s: %s: %s not set", cfgPath, msg, strings.Join(missing, ", "))
	}
	h := Hardware{
		NumGenServers: *hw.NumGenServers,
		GPUsPerNode:   *hw.GPUsPerNode,
	}
	if !genOnly {
		h.NumCtxServers = *hw.NumCtxServers
	}
	// Each size is below 2^31 (config.Parse), but their products need not
	// fit an int: they are computed exactly and bounded.
	var err error
	if h.GPUsPerCtxServer, err = serverGPUs(c.Ctx, "worker_config.ctx", cfgPath); err != nil {
		return Hardware{}, err
	}
	if h.GPUsPerGenServer, err = serverGPUs(c.Gen, "worker_config.gen", cfgPath); err != nil {
		return Hardware{}, err
	}
	// config.Parse guarantees GPUsPerNode > 0, so these never divide by 0.
	h.NodesPerCtxServer = ceilDiv(h.GPUsPerCtxServer, h.GPUsPerNode)
	h.NodesPerGenServer = ceilDiv(h.GPUsPerGenServer, h.GPUsPerNode)
	h.GPUsPerNodePerCtxServer = min(h.GPUsPerCtxServer, h.GPUsPerNode)
	h.GPUsPerNodePerGenServer = min(h.GPUsPerGenServer, h.GPUsPerNode)
	nodes := new(big.Int).Add(mul(h.NumCtxServers, h.NodesPerCtxServer), mul(h.NumGenServers, h.NodesPerGenServer))
	if nodes.Cmp(big.NewInt(MaxJobSize)) > 0 {
		return Hardware{}, fmt.Errorf("%s: hardware.num_ctx_servers × nodes per CTX server + hardware.num_gen_servers × nodes per GEN server = %d × %d + %d × %d = %s nodes, expected at most %d",
			cfgPath, h.NumCtxServers, h.NodesPerCtxServer, h.NumGenServers, h.NodesPerGenServer, nodes, MaxJobSize)
	}
	h.TotalNodes = int(nodes.Int64())
	if gpus := mul(h.TotalNodes, h.GPUsPerNode); gpus.Cmp(big.NewInt(MaxJobSize)) > 0 {
		return Hardware{}, fmt.Errorf("%s: nodes × hardware.gpus_per_node = %d × %d = %s GPUs in all, expected at most %d",
			cfgPath, h.TotalNodes, h.GPUsPerNode, gpus, MaxJobSize)
	}
	h.TotalGPUs = h.TotalNodes * h.GPUsPerNode
	return h, nil
}

// MaxJobSize bounds every count the layout derives (GPUs per server,
// nodes, GPUs in all): far above any cluster, far below an overflow.
const MaxJobSize = 1 << 20

// serverGPUs is tensor × pipeline × context parallel size, bounded.
func serverGPUs(w config.Worker, field, cfgPath string) (int, error) {
	n := mul(w.TensorParallel, w.PipelineParallel)
	n.Mul(n, big.NewInt(int64(w.ContextParallel)))
	if n.Cmp(big.NewInt(MaxJobSize)) > 0 {
		return 0, fmt.Errorf("%s: %s: tensor_parallel_size × pipeline_parallel_size × context_parallel_size = %d × %d × %d = %s GPUs per server, expected at most %d",
			cfgPath, field, w.TensorParallel, w.PipelineParallel, w.ContextParallel, n, MaxJobSize)
	}
	return int(n.Int64()), nil
}

func mul(a, b int) *big.Int { return new(big.Int).Mul(big.NewInt(int64(a)), big.NewInt(int64(b))) }

// hardwareExports are the layout's export lines, in the profile's order
// (v2 adds the per-node GPU counts before the totals).
func hardwareExports(p Profile, hw Hardware) []string {
	lines := []string{
		"export numCtxServers=" + itoa(hw.NumCtxServers),
		"export numGenServers=" + itoa(hw.NumGenServers),
		"export gpusPerNode=" + itoa(hw.GPUsPerNode),
		"export gpusPerCtxServer=" + itoa(hw.GPUsPerCtxServer),
		"export gpusPerGenServer=" + itoa(hw.GPUsPerGenServer),
		"export nodesPerCtxServer=" + itoa(hw.NodesPerCtxServer),
		"export nodesPerGenServer=" + itoa(hw.NodesPerGenServer),
	}
	if p != V1 {
		lines = append(lines,
			"export gpusPerNodePerCtxServer="+itoa(hw.GPUsPerNodePerCtxServer),
			"export gpusPerNodePerGenServer="+itoa(hw.GPUsPerNodePerGenServer))
	}
	return append(lines, "export totalNodes="+itoa(hw.TotalNodes), "export totalGpus="+itoa(hw.TotalGPUs))
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func itoa(i int) string { return strconv.Itoa(i) }

func srunBlock(args []string) string {
	var b strings.Builder
	b.WriteString("srunArgs=(\n")
	for _, a := range args {
		b.WriteString(`  "` + a + "\"\n")
	}
	b.WriteString(")")
	return b.String()
}

func renderV1(req Request, res *Result, prefix, srunArgs []string, draft []byte) ([]byte, error) {
	c := res.Config
	res.GenOnly = genOnlyWithoutContext(V1, c, "")
	hw, err := computeHardware(V1, c, res.GenOnly, res.ConfigPath)
	if err != nil {
		return nil, err
	}
	res.Hardware = hw

	worker, server, bench := c.Environment.WorkerEnvVar, c.Environment.ServerEnvVar, c.Environment.BenchmarkEnvVar
	lines := prefix
	if res.GenOnly {
		conc, err := c.Benchmark.SingleConcurrency()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", res.ConfigPath, err)
		}
		worker = "TRTLLM_DISAGG_BENCHMARK_GEN_ONLY=1 TRTLLM_DISABLE_KV_CACHE_TRANSFER_OVERLAP=1 TLLM_BENCHMARK_REQ_QUEUES_SIZE=" + itoa(conc) + " " + worker
		server = "TRTLLM_DISAGG_BENCHMARK_GEN_ONLY=1 " + server
		lines = append(lines, "export TRTLLM_DISAGG_BENCHMARK_GEN_ONLY=1")
		srunArgs = append(srunArgs, "--container-env=TRTLLM_DISAGG_BENCHMARK_GEN_ONLY")
	}
	noLaunch := ""
	if pl, ok := findPytestLine(prefix); ok {
		renamed := strings.ReplaceAll(pl, "pytestCommand", "pytestCommandNoLLMAPILaunch")
		var kept []string
		for _, t := range pyFields(renamed) {
			if !isLLMAPILaunch(t) {
				kept = append(kept, t)
			}
		}
		noLaunch = strings.Join(kept, " ")
	}
	lines = append(lines,
		noLaunch,
		`export pytestCommandWorker="unset UCX_TLS && `+worker+` $pytestCommand"`,
		`export pytestCommandDisaggServer="`+server+` $pytestCommandNoLLMAPILaunch"`,
		`export pytestCommandBenchmark="`+bench+` $pytestCommandNoLLMAPILaunch"`,
		"export runScript="+req.RunSh,
		"export installScript="+req.InstallSh,
	)
	lines = append(lines, hardwareExports(V1, hw)...)
	srunArgs = append(srunArgs, "--container-env=DISAGG_SERVING_TYPE", "--container-env=pytestCommand")

	var b strings.Builder
	b.WriteString(strings.Join(lines, "\n"))
	b.WriteString("\n")
	b.WriteString(srunBlock(srunArgs))
	b.WriteString("\n")
	b.Write(draft)
	return []byte(b.String()), nil
}

// envBase is the start of every v2 worker's environment. The backslash is
// literal in the output: the variable is expanded on the node, per task.
const envBase = `FLASHINFER_JIT_DIR=/tmp/flashinfer_jit_cache_\${SLURM_LOCALID} HF_HOME=/tmp/hf_home`

func joinNonEmpty(parts ...string) string {
	var kept []string
	for _, p := range parts {
		if p != "" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, " ")
}

func ucxCommand(stage string) string {
	up := strings.ToUpper(stage)
	switch {
	case strings.Contains(up, "GB300"):
		return "export UCX_TLS=cuda_copy,cuda_ipc,sm,self,tcp &&"
	case strings.Contains(up, "B200") && !strings.Contains(up, "GB200"):
		return "export UCX_TLS=^ib &&"
	}
	return "unset UCX_TLS UCX_NET_DEVICES &&"
}

func renderV2(req Request, res *Result, prefix, srunArgs []string, draft, gate []byte) ([]byte, error) {
	c := res.Config
	id := res.TestID
	res.GenOnly = genOnlyWithoutContext(V2, c, id.Mode)
	hw, err := computeHardware(V2, c, res.GenOnly, res.ConfigPath)
	if err != nil {
		return nil, err
	}
	res.Hardware = hw

	env := c.Environment
	ctxEnv := pyRstrip(envBase + " " + joinNonEmpty(env.WorkerEnvVar, env.CtxWorkerEnvVar))
	genEnv := pyRstrip(envBase + " " + joinNonEmpty(env.WorkerEnvVar, env.GenWorkerEnvVar))
	serverEnv := env.ServerEnvVar

	lines := prefix
	switch {
	case res.GenOnly:
		genEnv = "TRTLLM_DISAGG_BENCHMARK_GEN_ONLY=1 " + genEnv
		serverEnv = "TRTLLM_DISAGG_BENCHMARK_GEN_ONLY=1 " + serverEnv
		lines = append(lines, "export TRTLLM_DISAGG_BENCHMARK_GEN_ONLY=1")
		srunArgs = append(srunArgs, "--container-env=TRTLLM_DISAGG_BENCHMARK_GEN_ONLY")
	case id.Mode == "gen_only":
		q, warning, err := requestQueueSize(c)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", res.ConfigPath, err)
		}
		if warning != "" {
			res.Warnings = append(res.Warnings, warning)
		}
		ctxEnv = "TRTLLM_DISABLE_KV_CACHE_TRANSFER_OVERLAP=1 " + ctxEnv
		genEnv = "TRTLLM_DISABLE_KV_CACHE_TRANSFER_OVERLAP=1 TLLM_BENCHMARK_REQ_QUEUES_SIZE=" + itoa(q) + " " + genEnv
	}

	res.OutputDir = testOutputDir(pytestLineOf(prefix), id.Bracket)
	precheck := c.Precheck.Enabled
	if req.PrecheckSwitch != nil {
		precheck = *req.PrecheckSwitch == "1"
	}
	res.Precheck = precheck
	relConfig, err := relPath(res.ConfigPath, req.LLMSrc)
	if err != nil {
		return nil, err
	}
	ucx := ucxCommand(req.StageName)
	p := precheckCommand(relConfig, id.Mode)

	lines = perfSanityLines(V2, req, res, lines, roleEnv{ctxEnv, genEnv, serverEnv, env.BenchmarkEnvVar}, ucx)
	lines = append(lines,
		"export ctPrecheckEnabled="+boolDigit(precheck),
		"export ctPrecheckTimeout="+itoa(c.Precheck.StepTimeoutS),
		`export stageName="`+req.StageName+`"`,
		"export precheckRunScript=$llmSrcNode/jenkins/scripts/perf/disaggregated/slurm_precheck_run.sh",
		`export pytestCommandCTXPrecheck="`+ucx+` $CTX_WORKER_ENV_VARS `+p+` --role ctx"`,
		`export pytestCommandGENPrecheck="`+ucx+` $GEN_WORKER_ENV_VARS `+p+` --role gen"`,
	)
	srunArgs = append(srunArgs, "--container-env=DISAGG_SERVING_TYPE", "--container-env=pytestCommand")
	return assemblePerfSanity(lines, srunArgs, gate, draft), nil
}

// roleEnv are the environment strings of the four roles.
type roleEnv struct{ ctx, gen, server, bench string }

func pytestLineOf(prefix []string) string {
	l, _ := findPytestLine(prefix)
	return l
}

// perfSanityLines appends to lines what v2 and v3 share: the three derived
// pytest lines, the role environments, the four role commands (each
// starting with the UCX prefix ucx), the scripts, the config path, the
// layout and testOutputDir.
func perfSanityLines(p Profile, req Request, res *Result, lines []string, env roleEnv, ucx string) []string {
	var workerLine, serverLine, benchLine string
	if pytestLine, ok := findPytestLine(lines); ok {
		workerLine = derivePytestLine(pytestLine, "partialPytestCommandWorker", isOutputFileOption)
		serverLine = derivePytestLine(pytestLine, "partialPytestCommandDisaggServer", func(g string) bool {
			return isLLMAPILaunch(g) || isOutputFileOption(g)
		})
		benchLine = derivePytestLine(pytestLine, "partialPytestCommandBenchmark", isLLMAPILaunch)
	}
	lines = append(lines,
		workerLine, serverLine, benchLine,
		`export PYTEST_COMMON_VARS=""`,
		`export CTX_WORKER_ENV_VARS="`+env.ctx+`"`,
		`export GEN_WORKER_ENV_VARS="`+env.gen+`"`,
		`export SERVER_ENV_VARS="`+env.server+`"`,
		`export BENCHMARK_ENV_VARS="`+env.bench+`"`,
		`export pytestCommandCTXWorker="`+ucx+` $CTX_WORKER_ENV_VARS $PYTEST_COMMON_VARS $partialPytestCommandWorker"`,
		`export pytestCommandGENWorker="`+ucx+` $GEN_WORKER_ENV_VARS $PYTEST_COMMON_VARS $partialPytestCommandWorker"`,
		`export pytestCommandDisaggServer="`+ucx+` $SERVER_ENV_VARS $PYTEST_COMMON_VARS $partialPytestCommandDisaggServer"`,
		`export pytestCommandBenchmark="`+ucx+` $BENCHMARK_ENV_VARS $PYTEST_COMMON_VARS $partialPytestCommandBenchmark"`,
		"export runScript="+req.RunSh,
		"export installScript="+req.InstallSh,
		"export configYamlPath="+res.ConfigPath,
	)
	lines = append(lines, hardwareExports(p, res.Hardware)...)
	return append(lines, "export testOutputDir="+res.OutputDir)
}

// precheckCommand is the precheck driver's command line (<P>).
func precheckCommand(relConfig, mode string) string {
	return "python3 $llmSrcNode/tests/scripts/perf-sanity/cache_transceiver_precheck/run_precheck.py" +
		" --config $llmSrcNode/" + relConfig +
		" --work-dir $testOutputDir/cache_transceiver_precheck" +
		" --benchmark-mode " + mode + " --llm-src $llmSrcNode"
}

// assemblePerfSanity joins the v2/v3 script: prefix lines, srunArgs block,
// gate library and draft, each stripped of blank lines and indentation.
func assemblePerfSanity(lines, srunArgs []string, gate, draft []byte) []byte {
	var b strings.Builder
	b.WriteString(strings.Join(nonEmptyStripped(lines), "\n"))
	b.WriteString("\n")
	b.WriteString(srunBlock(nonEmptyStripped(srunArgs)))
	b.WriteString("\n")
	b.WriteString(strings.Join(nonEmptyStripped(strings.Split(string(gate), "\n")), "\n"))
	b.WriteString("\n")
	b.WriteString(string(draftPart(V2, draft)))
	return []byte(b.String())
}

func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// requestQueueSize caps the gen-only fill target to what the GEN executor
// can hold, as upstream's perf-sanity generator does.
func requestQueueSize(c *config.Config) (int, string, error) {
	conc, err := c.Benchmark.SingleConcurrency()
	if err != nil {
		return 0, "", err
	}
	maxBatch := conc
	if c.Gen.MaxBatchSize != nil {
		maxBatch = *c.Gen.MaxBatchSize
	}
	tp := c.Gen.TensorParallel
	capacity := maxBatch
	if c.Gen.EnableAttentionDP {
		capacity = maxBatch * tp
	}
	q := min(capacity, conc)
	if q < conc {
		attn := "False"
		if c.Gen.EnableAttentionDP {
			attn = "True"
		}
		return q, fmt.Sprintf("[WARNING] TLLM_BENCHMARK_REQ_QUEUES_SIZE capped to %d (max_batch_size=%d, tp_size=%d, attention_dp=%s) instead of concurrency=%d. The fill loop cannot reach a target above the GEN executor capacity.", q, maxBatch, tp, attn, conc), nil
	}
	return q, "", nil
}

// relPath is os.path.relpath(target, base) for the paths the generator
// builds (both relative or both absolute, as they share llmSrc).
func relPath(target, base string) (string, error) {
	if filepath.IsAbs(target) != filepath.IsAbs(base) {
		// An absolute config name component would have reset the join;
		// the config name check rules that out, so this is a bug guard.
		return "", fmt.Errorf("config path %s is not under --llm-src %s", target, base)
	}
	return filepath.Rel(filepath.Clean(base), filepath.Clean(target))
}
