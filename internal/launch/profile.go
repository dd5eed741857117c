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
)

// Profiles lists the valid profile names, for help texts and errors.
var Profiles = []Profile{V1, V2}

// ParseProfile validates a profile name given by the user.
func ParseProfile(s string) (Profile, error) {
	for _, p := range Profiles {
		if string(p) == s {
			return p, nil
		}
	}
	return "", fmt.Errorf("--profile: expected %s or %s, got %q", V1, V2, s)
}

// Files of a TensorRT-LLM checkout that the profiles rely on, relative to
// its root.
const (
	v2GeneratorFile = "jenkins/scripts/perf/submit.py"
	v1ConfigFolder  = "tests/integration/defs/perf/disagg/test_configs/disagg/perf/"
	v2ConfigFolder  = "tests/scripts/perf-sanity/disaggregated/"
	// DraftPath is where a checkout keeps the draft launch logic.
	DraftPath = "jenkins/scripts/perf/disaggregated/slurm_launch_draft.sh"
	// GateFile is the v2 precheck gate library, beside the draft.
	GateFile = "slurm_ct_precheck_gate.sh"
)

// Detect picks the profile of a checkout: perf-sanity-v2 when it has the
// unified generator and the perf-sanity config folder, else disagg-v1.
// isFile and isDir report whether a path exists as such.
func Detect(llmSrc string, isFile, isDir func(string) bool) Profile {
	if isFile(pyJoin(llmSrc, v2GeneratorFile)) && isDir(pyJoin(llmSrc, v2ConfigFolder)) {
		return V2
	}
	return V1
}

// ConfigPath is where the profile looks for the config named by a test id,
// built exactly as upstream builds it (relative when llmSrc is).
func ConfigPath(p Profile, llmSrc, configName string) string {
	folder := v1ConfigFolder
	if p == V2 {
		folder = v2ConfigFolder
	}
	return pyJoin(llmSrc, folder, configName+".yaml")
}
