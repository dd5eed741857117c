package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The stand-in checkouts (testdata/trtllm-v*) without the cluster: their
// shared files match testdata/standin, and every config of every checkout
// gives a launch.sh that bash can parse (and shellcheck finds no error in),
// with the profile the checkout is detected as. The real-cluster tests
// (run_integration_test.go) then run those scripts for real.

func TestStandinInSync(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	out, err := exec.Command("testdata/standin/sync.sh", "--check").CombinedOutput()
	if err != nil {
		t.Fatalf("testdata/standin/sync.sh --check: %v\n%s", err, out)
	}
}

var standinCheckouts = []struct {
	name, profile, configs string
}{
	{"v1", "disagg-v1", "tests/integration/defs/perf/disagg/test_configs/disagg/perf"},
	{"v2", "perf-sanity-v2", "tests/scripts/perf-sanity/disaggregated"},
	{"v3", "perf-sanity-v3", "tests/scripts/perf-sanity/disaggregated"},
}

func TestStandinDryRun(t *testing.T) {
	shellcheck, _ := exec.LookPath("shellcheck")
	for _, c := range standinCheckouts {
		configs, _ := filepath.Glob(filepath.Join("testdata", "trtllm-"+c.name, c.configs, "*.yaml"))
		if len(configs) < 4 {
			t.Fatalf("trtllm-%s: only %d configs", c.name, len(configs))
		}
		for _, cfg := range configs {
			name := strings.TrimSuffix(filepath.Base(cfg), ".yaml")
			t.Run(c.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				ws := t.TempDir()
				checkout, _ := filepath.Abs(filepath.Join("testdata", "trtllm-"+c.name))
				cmd := exec.Command(binary, "run", "--dry-run")
				cmd.Env = append(cleanEnvWithout("CLUSTER_", "CONFIG_NAME=", "TRTLLM_", "WORKSPACE=", "DOCKER_IMAGE=", "DISAGG_", "STAGE_NAME=", "RUN_SH=", "INSTALL_SH=", "DRAFT_LAUNCH_SH=", "PYTEST_COMMAND=", "MPI_TYPE=", "BUILD_TAG="),
					"CLUSTER_HOST=host.invalid", "CLUSTER_PARTITION=batch", "CLUSTER_ACCOUNT=acct",
					"DOCKER_IMAGE=nvcr.io/nvidia/tensorrt-llm/release:1.0", "CLUSTER_LLM_DATA=/models",
					"TRTLLM_DIR="+checkout, "WORKSPACE="+ws, "CLUSTER_WORKDIR=/cluster/work",
					"CONFIG_NAME="+name, "DISAGG_RUN_ID=dry")
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					t.Fatalf("run --dry-run: %v\n%s", err, stderr.String())
				}
				if !strings.Contains(stderr.String(), "profile="+c.profile) {
					t.Errorf("not generated as %s:\n%s", c.profile, stderr.String())
				}
				launch := filepath.Join(ws, "disagg-runner", "dry", "launch.sh")
				if out, err := exec.Command("bash", "-n", launch).CombinedOutput(); err != nil {
					t.Errorf("bash -n %s: %v\n%s", launch, err, out)
				}
				if shellcheck == "" {
					return
				}
				if out, err := exec.Command(shellcheck, "-s", "bash", "-S", "error", launch).CombinedOutput(); err != nil {
					t.Errorf("shellcheck -s bash -S error: %v\n%s", err, out)
				}
			})
		}
	}
}

// cleanEnvWithout is this process's environment without the variables
// whose "NAME=" starts with one of the prefixes (the runner's inputs
// must come from the test alone), and without the generator's switches.
func cleanEnvWithout(prefixes ...string) []string {
	var env []string
next:
	for _, kv := range cleanEnv() {
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		env = append(env, kv)
	}
	return env
}
