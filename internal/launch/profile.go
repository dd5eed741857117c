// Package launch generates launch.sh, the batch script given to sbatch,
// byte for byte as TensorRT-LLM's submit.py generators do (GENERATOR.md).
// It is pure: callers hand it bytes and get bytes back; reading the files
// is done by a caller-supplied function, so the same code serves the
// `generate` drop-in, `run` and the golden tests.
package launch

import "fmt"

// Profile names one generation of upstream's generator.
type Profile string

const (
	// V1 is jenkins/scripts/perf/disaggregated/submit.py --run-ci.
	V1 Profile = "disagg-v1"
	// V2 is the unified jenkins/scripts/perf/submit.py (perf-sanity).
	V2 Profile = "perf-sanity-v2"
	// V3 is the newest generation of the unified submit.py, with its helper
	// modules cluster_env.py and benchmark_utils.py and the checkout's
	// precheck_config.py.
	V3 Profile = "perf-sanity-v3"
)

// Profiles lists the valid profile names, for help texts and errors.
var Profiles = []Profile{V1, V2, V3}

// ParseProfile validates a profile name given by the user.
func ParseProfile(s string) (Profile, error) {
	for _, p := range Profiles {
		if string(p) == s {
			return p, nil
		}
	}
	return "", fmt.Errorf("--profile: expected %s, %s or %s, got %q", V1, V2, V3, s)
}

// Files of a TensorRT-LLM checkout that the profiles rely on, relative to
// its root.
const (
	v2GeneratorFile = "jenkins/scripts/perf/submit.py"
	v1ConfigFolder  = "tests/integration/defs/perf/disagg/test_configs/disagg/perf/"
	v2ConfigFolder  = "tests/scripts/perf-sanity/disaggregated/"
	// DraftPath is where a checkout keeps the draft launch logic.
	DraftPath = "jenkins/scripts/perf/disaggregated/slurm_launch_draft.sh"
	// GateFile is the v2/v3 precheck gate library, beside the draft.
	GateFile = "slurm_ct_precheck_gate.sh"
	// GatePath is where v3 also looks for the gate library in the checkout.
	GatePath = "jenkins/scripts/perf/disaggregated/" + GateFile
	// The v3 generator imports these two modules from its own folder; a
	// checkout has both exactly when it is of the v3 generation.
	v3ClusterEnvFile     = "jenkins/scripts/perf/cluster_env.py"
	v3BenchmarkUtilsFile = "jenkins/scripts/perf/benchmark_utils.py"
	// PrecheckConfigPath is the precheck module the v3 generator imports
	// from the checkout; it must exist (its content is not read).
	PrecheckConfigPath = "tests/scripts/perf-sanity/cache_transceiver_precheck/precheck_config.py"
)

// Detect picks the profile of a checkout, by file presence only:
// perf-sanity-v3 when it has both of the v3 generator's helper modules
// (jenkins/scripts/perf/cluster_env.py and benchmark_utils.py), else
// perf-sanity-v2 when it has the unified generator and the perf-sanity
// config folder, else disagg-v1. isFile and isDir report whether a path
// exists as such. A checkout with only one of the v3 modules gets the
// v2/v1 answer here; DetectChecked refuses it instead.
func Detect(llmSrc string, isFile, isDir func(string) bool) Profile {
	p, err := DetectChecked(llmSrc, isFile, isDir)
	if err != nil {
		return detectV2V1(llmSrc, isFile, isDir)
	}
	return p
}

// DetectChecked is Detect that refuses a checkout having exactly one of the
// two v3 modules: it is from a generation between the pinned ones (neither
// v2 nor v3 byte for byte), so guessing would be wrong.
func DetectChecked(llmSrc string, isFile, isDir func(string) bool) (Profile, error) {
	clusterEnv, benchUtils := pyJoin(llmSrc, v3ClusterEnvFile), pyJoin(llmSrc, v3BenchmarkUtilsFile)
	hasClusterEnv, hasBenchUtils := isFile(clusterEnv), isFile(benchUtils)
	switch {
	case hasClusterEnv && hasBenchUtils:
		return V3, nil
	case hasClusterEnv || hasBenchUtils:
		found, missing := clusterEnv, benchUtils
		if hasBenchUtils {
			found, missing = benchUtils, clusterEnv
		}
		return "", fmt.Errorf("--llm-src %s: the checkout has %s but not %s, so its generator is from a generation disagg-runner has not pinned (%s needs both files, %s neither); choose the profile with --profile (or DISAGG_PROFILE) if you know which generation it matches",
			llmSrc, found, missing, V3, V2)
	}
	return detectV2V1(llmSrc, isFile, isDir), nil
}

func detectV2V1(llmSrc string, isFile, isDir func(string) bool) Profile {
	if isFile(pyJoin(llmSrc, v2GeneratorFile)) && isDir(pyJoin(llmSrc, v2ConfigFolder)) {
		return V2
	}
	return V1
}

// Evidence says what in a checkout makes Detect choose p.
func Evidence(p Profile) string {
	switch p {
	case V3:
		return "the checkout has " + v3ClusterEnvFile + " and " + v3BenchmarkUtilsFile
	case V2:
		return "the checkout has " + v2GeneratorFile + " and " + v2ConfigFolder + ", and neither v3 helper module"
	}
	return "the checkout has neither the v3 helper modules nor " + v2GeneratorFile + " with " + v2ConfigFolder
}

// ConfigPath is where the profile looks for the config named by a test id,
// built exactly as upstream builds it (relative when llmSrc is).
func ConfigPath(p Profile, llmSrc, configName string) string {
	folder := v1ConfigFolder
	if p == V2 || p == V3 {
		folder = v2ConfigFolder
	}
	return pyJoin(llmSrc, folder, configName+".yaml")
}
