package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/disagg-runner/disagg-runner/internal/launch"
)

type checkItem struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Fix    string `json:"fix"`
}

func runCheck(t *testing.T, j *job, args ...string) (int, []checkItem, string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"check", "--json"}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range j.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		OK    bool        `json:"ok"`
		Items []checkItem `json:"items"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("check --json printed no JSON: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	return code, rep.Items, stdout.String()
}

func TestCheckAgainstCluster(t *testing.T) {
	j := newJob(t, "v2", "tc_ctx1_gen1_3nodes", nil)
	code, items, out := runCheck(t, j)
	if code != 0 {
		t.Fatalf("check of a good set-up exited %d:\n%s", code, out)
	}
	if len(items) < 20 {
		t.Errorf("only %d items checked", len(items))
	}

	breakages := []struct {
		name   string
		edit   func(j *job)
		failed string // the one item that must fail
	}{
		{"unset variable", func(j *job) { delete(j.env, "DOCKER_IMAGE") }, "DOCKER_IMAGE set"},
		{"missing draft", func(j *job) {
			os.Remove(filepath.Join(j.checkout, launch.DraftPath))
		}, "draft launch script exists"},
		{"bad YAML field", func(j *job) {
			p := filepath.Join(j.checkout, "tests/scripts/perf-sanity/disaggregated/tc_ctx1_gen1_3nodes.yaml")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, []byte(strings.Replace(string(b), "gpus_per_node: 4", "gpus_per_node: four", 1)), 0o644)
		}, "config YAML valid"},
		{"unknown partition", func(j *job) { j.env["CLUSTER_PARTITION"] = "nosuchpartition" }, "partition exists"},
		{"wrong host key", func(j *job) {
			bad := filepath.Join(j.workspace, "bad_known_hosts")
			os.WriteFile(bad, []byte("[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"), 0o644)
			j.env["CLUSTER_KNOWN_HOSTS"] = bad
		}, "login node reachable"},
		{"unwritable workspace", func(j *job) { j.env["WORKSPACE"] = filepath.Join(j.workspace, "no", "such", "folder") }, "WORKSPACE writable"},
		{"checkout missing on the cluster", func(j *job) { j.env["TRTLLM_NODE_DIR"] = "/nonexistent/TensorRT-LLM" }, "TRTLLM_NODE_DIR on the cluster"},
	}
	for _, b := range breakages {
		t.Run(b.name, func(t *testing.T) {
			j := newJob(t, "v2", "tc_ctx1_gen1_3nodes", nil)
			b.edit(j)
			code, items, out := runCheck(t, j)
			if code != 10 {
				t.Fatalf("exit %d, want 10:\n%s", code, out)
			}
			var failed []string
			for _, it := range items {
				if !it.OK {
					failed = append(failed, it.Name)
					if it.Fix == "" {
						t.Errorf("%s failed without a fix", it.Name)
					}
				}
			}
			if len(failed) == 0 || failed[0] != b.failed {
				t.Errorf("failed items %v, want first %q", failed, b.failed)
			}
			// Everything after the failure was still checked.
			if len(items) < 12 {
				t.Errorf("only %d items after the failure", len(items))
			}
		})
	}
}

func TestCheckTable(t *testing.T) {
	j := newJob(t, "v1", "tc_gen_only_1node", nil)
	delete(j.env, "CLUSTER_ACCOUNT")
	cmd := exec.Command(binary, "check")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range j.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 10 {
		t.Fatalf("exit %v, want 10\n%s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "✗ CLUSTER_ACCOUNT set") || !strings.Contains(s, "fix: set CLUSTER_ACCOUNT") || !strings.Contains(s, "✓ login node reachable") {
		t.Errorf("table:\n%s", s)
	}
}

// TestCheckAgainstClusterV3: the perf-sanity-v3 stand-in checkout passes
// every item, and check names the generation, the UCX row of the cluster
// name, and the comparison with the checkout's submit.py (a placeholder
// there, so "not checked").
func TestCheckAgainstClusterV3(t *testing.T) {
	j := newJob(t, "v3", "tc_ctx1_gen1_2nodes", nil)
	j.env["CLUSTER_NAME"] = "gcp-nrt-testcluster"
	code, items, out := runCheck(t, j)
	if code != 0 {
		t.Fatalf("check of a good v3 set-up exited %d:\n%s", code, out)
	}
	want := map[string]string{
		"config YAML valid":                          "(perf-sanity-v3; 2 nodes, 8 GPUs)",
		"draft matches profile":                      "perf-sanity-v3 (detected: the checkout has jenkins/scripts/perf/cluster_env.py and jenkins/scripts/perf/benchmark_utils.py)",
		"UCX settings by cluster name":               "UCX: gcp-nrt row (CLUSTER_NAME=gcp-nrt-testcluster)",
		"launch.sh matches the checkout's submit.py": "not checked: ",
		"job fits the partition":                     "needs 2 nodes with 4 GPUs each",
	}
	for _, it := range items {
		if w, ok := want[it.Name]; ok {
			if !strings.Contains(it.Detail, w) {
				t.Errorf("%s: %q, want it to contain %q", it.Name, it.Detail, w)
			}
			delete(want, it.Name)
		}
	}
	for name := range want {
		t.Errorf("no item %q:\n%s", name, out)
	}
}
