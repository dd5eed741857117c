package launch

import (
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"strings"

	"github.com/disagg-runner/disagg-runner/internal/config"
	"github.com/disagg-runner/disagg-runner/internal/py"
	"github.com/disagg-runner/disagg-runner/internal/shellquote"
)

// generateV3 builds launch.sh as the perf-sanity-v3 generator does
// (GENERATOR.md, "perf-sanity-v3"). When several inputs are wrong, the
// first in the contract's order of checks is reported.
func generateV3(req Request, read ReadFunc) (*Result, error) {
	if err := checkUnquotedPath(req.name(InputCheckout), req.LLMSrc); err != nil {
		return nil, err
	}

	// Test list and test selection.
	testList, err := req.testList(read)
	if err != nil {
		return nil, err
	}
	lines := runnableLines(string(testList))
	if len(lines) == 0 {
		return nil, fmt.Errorf("Test list is empty: %s (no line that is not blank or a # comment)", req.TestListPath)
	}
	prefix, err := req.prefix(read)
	if err != nil {
		return nil, err
	}
	prefixLines := strings.Split(string(prefix), "\n")
	pytestLine, hasPytest := findPytestLine(prefixLines)
	var words []string
	if hasPytest {
		// The options split is needed to select the test (pytest-split) and
		// is done for every input, as upstream does.
		if words, err = pytestOptionWords(pytestLine); err != nil {
			return nil, fmt.Errorf("%s %s: the exported pytestCommand is not valid shell quoting (%s), so its pytest options cannot be read: %s", req.name(InputScriptPrefix), req.PrefixPath, err, clip(pytestLine))
		}
	}
	line, err := selectTestV3(lines, req.SplitGroup, words, req.LLMSrc, req.TestListPath, read)
	if err != nil {
		return nil, err
	}

	// Test id and config.
	id, err := parseTestLine(V3, line, req.TestListPath)
	if err != nil {
		return nil, err
	}
	res := &Result{Profile: V3, TestID: id, ConfigPath: ConfigPath(V3, req.LLMSrc, id.ConfigName)}
	if res.Config, err = req.config(res.ConfigPath, id, read); err != nil {
		return nil, err
	}
	c := res.Config
	if err := checkEnvStrings(c, res.ConfigPath); err != nil {
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

	// hardware.*, benchmark.concurrency_list.
	res.GenOnly = genOnlyWithoutContext(V3, c, id.Mode)
	if res.Hardware, err = computeHardware(V3, c, res.GenOnly, res.ConfigPath); err != nil {
		return nil, err
	}
	concurrency, err := v3Concurrency(c, res.ConfigPath)
	if err != nil {
		return nil, err
	}

	// The precheck: its module, the switch, the model root, the timeouts.
	if err := checkPresent(read, pyJoin(req.LLMSrc, PrecheckConfigPath), "the perf-sanity-v3 generator imports it from the checkout (--llm-src)"); err != nil {
		return nil, err
	}
	switchOn, err := precheckSwitchV3(req.PrecheckSwitch, c)
	if err != nil {
		return nil, err
	}
	root, rootFound := "", false
	if switchOn {
		testPrefix, _ := optionValue(words, "--test-prefix")
		if res.Skipped, err = skippedByWaiver(line, testPrefix, req.LLMSrc, read); err != nil {
			return nil, err
		}
		var problem error
		root, rootFound, problem = modelsRoot(pytestLine, hasPytest, req.ModelsRootEnv)
		switch {
		case problem != nil && !res.Skipped:
			return nil, &ModelsRootError{fmt.Errorf("%s %s: %w", req.name(InputScriptPrefix), req.PrefixPath, problem)}
		case problem != nil:
			res.Warnings = append(res.Warnings, "WARNING: "+problem.Error()+" (the test is SKIP-waived, so its precheck does not run)")
		case root == "" && !res.Skipped:
			return nil, &ModelsRootError{errors.New("enabled cache-transceiver precheck requires LLM_MODELS_ROOT (the pytestCommand line assigns it an empty value; set it there, or turn the precheck off with TRTLLM_DISAGG_CT_PRECHECK=0)")}
		}
	}
	res.Precheck = switchOn && !res.Skipped
	step, err := precheckTimeout(c, res.ConfigPath, res.Hardware)
	if err != nil {
		return nil, err
	}
	gate, err := readGateV3(req, read)
	if err != nil {
		return nil, err
	}

	// Render.
	env := c.Environment
	roles := roleEnv{
		ctx:    pyRstrip(envBase + " " + joinNonEmpty(env.WorkerEnvVar, env.CtxWorkerEnvVar)),
		gen:    pyRstrip(envBase + " " + joinNonEmpty(env.WorkerEnvVar, env.GenWorkerEnvVar)),
		server: env.ServerEnvVar,
		bench:  env.BenchmarkEnvVar,
	}
	out := prefixLines
	switch {
	case res.GenOnly:
		roles.gen = "TRTLLM_DISAGG_BENCHMARK_GEN_ONLY=1 " + roles.gen
		roles.server = "TRTLLM_DISAGG_BENCHMARK_GEN_ONLY=1 " + roles.server
		out = append(out, "export TRTLLM_DISAGG_BENCHMARK_GEN_ONLY=1")
		srunArgs = append(srunArgs, "--container-env=TRTLLM_DISAGG_BENCHMARK_GEN_ONLY")
	case id.Mode == "gen_only":
		roles.gen = "TRTLLM_DISABLE_KV_CACHE_TRANSFER_OVERLAP=1 TLLM_BENCHMARK_REQ_QUEUES_SIZE=" + concurrency.String() + " " + roles.gen
	}
	res.OutputDir = testOutputDir(pytestLine, id.Bracket)
	relConfig, err := relPath(res.ConfigPath, req.LLMSrc)
	if err != nil {
		return nil, err
	}
	ucx := ucxCommandV3(req.ClusterName)
	out = perfSanityLines(V3, req, res, out, roles, ucx)
	if res.Precheck {
		out = append(out, "export LLM_MODELS_ROOT="+shellquote.ShlexQuote(root))
	}
	rootEnv := "''"
	if rootFound && root != "" {
		rootEnv = shellquote.ShlexQuote("LLM_MODELS_ROOT=" + shellquote.ShlexQuote(root))
	}
	p := precheckCommand(relConfig, id.Mode)
	out = append(out,
		"export ctPrecheckEnabled="+boolDigit(res.Precheck),
		"export ctPrecheckTimeout="+step.String(),
		"export precheckRunScript=$llmSrcNode/jenkins/scripts/perf/disaggregated/slurm_precheck_run.sh",
		"export ctPrecheckModelRootEnv="+rootEnv,
		`export pytestCommandCTXPrecheck="`+ucx+` $ctPrecheckModelRootEnv $CTX_WORKER_ENV_VARS $PYTEST_COMMON_VARS `+p+` --role ctx"`,
		`export pytestCommandGENPrecheck="`+ucx+` $ctPrecheckModelRootEnv $GEN_WORKER_ENV_VARS $PYTEST_COMMON_VARS `+p+` --role gen"`,
	)
	if req.StageName != "" {
		out = append(out, `export stageName="`+req.StageName+`"`)
	}
	srunArgs = append(srunArgs, "--container-env=DISAGG_SERVING_TYPE", "--container-env=pytestCommand")
	if switchOn {
		srunArgs = append(srunArgs, "--container-env=LLM_MODELS_ROOT")
	}
	return finish(req, res, assemblePerfSanity(out, srunArgs, gate, draft), draft), nil
}

// v3Concurrency checks benchmark.concurrency_list (every test): a YAML
// integer or a string int() reads, above 0; "1" when absent.
func v3Concurrency(c *config.Config, cfgPath string) (*big.Int, error) {
	v := c.Benchmark.ConcurrencyValue
	if v == nil {
		return big.NewInt(1), nil
	}
	var n *big.Int
	switch v.Kind {
	case config.KindInt:
		n = v.Int
	case config.KindStr:
		n, _ = py.IntString(v.Text)
	}
	if n == nil || n.Sign() <= 0 {
		return nil, fmt.Errorf("%s: benchmark.concurrency_list must be a positive integer, got %s (perf-sanity-v3 reads one concurrency per config)", cfgPath, v.Repr())
	}
	return n, nil
}

// checkPresent fails, naming path and why it is needed, when path cannot
// be read. Only presence counts: the content is not used.
func checkPresent(read ReadFunc, path, why string) error {
	if _, err := read(path); err != nil {
		return fmt.Errorf("%s is missing (%s): %w", path, why, unwrapPathError(err))
	}
	return nil
}

// precheckSwitchV3 is whether the precheck is switched on:
// TRTLLM_DISAGG_CT_PRECHECK when set, else cache_transceiver_precheck.enabled
// (Python truthiness), else on.
func precheckSwitchV3(sw *string, c *config.Config) (bool, error) {
	if sw != nil {
		switch strings.ToLower(pyStrip(*sw)) {
		case "1", "true", "on", "yes":
			return true, nil
		case "0", "false", "off", "no":
			return false, nil
		}
		shown := "'" + *sw + "'"
		if strings.ContainsAny(*sw, "\n\r") {
			shown = py.Repr(*sw)
		}
		return false, fmt.Errorf("TRTLLM_DISAGG_CT_PRECHECK must be a boolean (1/0/true/false/on/off/yes/no), got %s", shown)
	}
	if v, ok := c.Precheck.Values["enabled"]; ok {
		return v.Truthy(), nil
	}
	return true, nil
}

// ModelsRootError is perf-sanity-v3's enabled precheck finding no usable
// models root (LLM_MODELS_ROOT) in the pytest line or the environment; a
// caller that makes the pytest line itself can say how to fix it.
type ModelsRootError struct{ Err error }

func (e *ModelsRootError) Error() string { return e.Err.Error() }
func (e *ModelsRootError) Unwrap() error { return e.Err }

// modelsRoot finds the models root the precheck needs: the pytest line's
// leading LLM_MODELS_ROOT assignment (even an empty one), else the
// submitter's LLM_MODELS_ROOT. problem says why none was found.
func modelsRoot(pytestLine string, hasPytest bool, fromEnv string) (root string, found bool, problem error) {
	if !hasPytest {
		return "", false, errors.New("launch prefix does not export pytestCommand")
	}
	v, ok, err := leadingAssignment(pytestLine, "LLM_MODELS_ROOT")
	if err != nil {
		return "", false, err
	}
	if ok {
		return v, true, nil
	}
	if fromEnv != "" {
		return fromEnv, true, nil
	}
	return "", false, errors.New("pytestCommand does not set leading environment variable LLM_MODELS_ROOT; LLM_MODELS_ROOT is also absent from the submitter environment (pytestCommand is assembled by getPytestBaseCommandLine in L0_Test.groovy)")
}

// precheckTimeout reads the step timeout and checks it against the global
// health-check limit and the precheck's own longest phase watchdog.
func precheckTimeout(c *config.Config, cfgPath string, hw Hardware) (*big.Int, error) {
	knob := func(key string, def int64) (*big.Int, error) {
		v, ok := c.Precheck.Values[key]
		if !ok || v.Kind == config.KindNull {
			if def < 0 {
				return nil, nil
			}
			return big.NewInt(def), nil
		}
		n, ok := v.PyInt()
		if !ok {
			return nil, fmt.Errorf("%s: cache_transceiver_precheck.%s: expected a number of seconds, got %s", cfgPath, key, v.Repr())
		}
		return n, nil
	}
	step, err := knob("step_timeout_s", 1200)
	if err != nil {
		return nil, err
	}
	setup, err := knob("setup_timeout_s", 600)
	if err != nil {
		return nil, err
	}
	rendezvous, err := knob("rendezvous_timeout_s", 600)
	if err != nil {
		return nil, err
	}
	wave, err := knob("wave_timeout_s", 180)
	if err != nil {
		return nil, err
	}
	wireup, err := knob("wireup_timeout_s", -1)
	if err != nil {
		return nil, err
	}
	if wireup == nil {
		wireup = big.NewInt(int64(min(600, 150*max(hw.GPUsPerCtxServer, hw.GPUsPerGenServer))))
	}
	watchdog := new(big.Int).Add(wave, wireup)
	for _, v := range []*big.Int{setup, rendezvous} {
		if v.Cmp(watchdog) > 0 {
			watchdog = v
		}
	}
	watchdog = new(big.Int).Add(watchdog, big.NewInt(180))
	if step.Cmp(big.NewInt(1800)) > 0 {
		return nil, fmt.Errorf("%s: cache_transceiver_precheck.step_timeout_s must not exceed the global health-check limit (1800s), got %ss", cfgPath, step)
	}
	if step.Cmp(watchdog) <= 0 {
		return nil, fmt.Errorf("%s: cache_transceiver_precheck.step_timeout_s must exceed the longest phase watchdog (%ss), got %ss", cfgPath, watchdog, step)
	}
	return step, nil
}

// readGateV3 reads the gate library: beside the draft, else in the
// checkout's disaggregated folder.
func readGateV3(req Request, read ReadFunc) ([]byte, error) {
	places := []string{pyJoin(pyDirname(req.DraftPath), GateFile), pyJoin(req.LLMSrc, GatePath)}
	for _, p := range places {
		data, err := read(p)
		if err == nil {
			return data, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("precheck gate library %s: %w", p, unwrapPathError(err))
		}
	}
	return nil, fmt.Errorf("precheck gate library %s not found; looked in: %s", GateFile, strings.Join(places, ", "))
}

// ucxRows is the pinned cluster table: the first row whose prefix the
// lower-cased cluster name starts with gives the extra UCX export.
var ucxRows = []struct{ prefix, export string }{
	{"gcp-nrt", "export UCX_NET_DEVICES=rocep145s0:1,rocep146s0:1,rocep152s0:1,rocep153s0:1,rocep198s0:1,rocep199s0:1,rocep205s0:1,rocep206s0:1 UCX_IB_GID_INDEX=auto UCX_IB_TRAFFIC_CLASS=52 UCX_IB_SL=0"},
	{"oci-aga", "export UCX_TLS=cuda_ipc,cuda_copy,sm,self,tcp UCX_TCP_AF_PRIO=inet"},
	{"nsc-svg", "export UCX_NET_DEVICES=mlx5_0:1,mlx5_1:1,mlx5_2:1,mlx5_3:1,mlx5_4:1,mlx5_5:1,mlx5_10:1,mlx5_11:1"},
	{"aws-cmh", "export UCX_TLS=cuda_ipc,cuda_copy,sm,self,tcp UCX_NET_DEVICES=eth0,mlx5_0:1,mlx5_1:1,mlx5_2:1,mlx5_3:1,mlx5_4:1,mlx5_5:1,mlx5_6:1,mlx5_7:1"},
	{"aws-dfw", "export UCX_TLS=^gdr_copy"},
}

// ucxCommandV3 is the UCX prefix <U> of every v3 role command.
func ucxCommandV3(cluster string) string {
	const unset = "unset UCX_CUDA_IPC_ENABLE_MNNVL UCX_TLS UCX_NET_DEVICES &&"
	if i := ucxRowIndex(cluster); i >= 0 {
		return unset + " " + ucxRows[i].export + " &&"
	}
	return unset
}

func ucxRowIndex(cluster string) int {
	name := strings.ToLower(cluster)
	for i, r := range ucxRows {
		if strings.HasPrefix(name, r.prefix) {
			return i
		}
	}
	return -1
}

// UCXRow names the row of perf-sanity-v3's cluster table that a cluster
// name selects (its prefix, such as "gcp-nrt"), or "" when none does and
// the UCX defaults apply.
func UCXRow(cluster string) string {
	if i := ucxRowIndex(cluster); i >= 0 {
		return ucxRows[i].prefix
	}
	return ""
}

// UCXRows lists the prefixes of the cluster table's rows, in order.
func UCXRows() []string {
	names := make([]string, len(ucxRows))
	for i, r := range ucxRows {
		names[i] = r.prefix
	}
	return names
}
