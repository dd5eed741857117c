package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// jenkinsfileStep returns the command of the Jenkinsfile's one sh step and
// the patterns given to junit and archiveArtifacts, so that the test runs
// exactly what Jenkins would and the two cannot drift apart.
func jenkinsfileStep(t *testing.T) (sh string, junit, archive string) {
	t.Helper()
	b, err := os.ReadFile("Jenkinsfile")
	if err != nil {
		t.Fatal(err)
	}
	steps := regexp.MustCompile(`(?m)^\s*sh '([^']*)'\s*$`).FindAllStringSubmatch(string(b), -1)
	if len(steps) != 1 {
		t.Fatalf("the Jenkinsfile must have exactly one sh step, found %d", len(steps))
	}
	j := regexp.MustCompile(`junit [^\n]*testResults: '([^']+)'`).FindStringSubmatch(string(b))
	a := regexp.MustCompile(`archiveArtifacts [^\n]*artifacts: '([^']+)'`).FindStringSubmatch(string(b))
	if j == nil || a == nil {
		t.Fatal("the Jenkinsfile has no junit or archiveArtifacts step")
	}
	return steps[0][1], j[1], a[1]
}

// antGlob matches Jenkins' Ant-style patterns (*, ** for any folders).
func antGlob(root, pattern string) []string {
	re := regexp.QuoteMeta(pattern)
	re = strings.ReplaceAll(re, `/\*\*`, `(/.*)?`)
	re = strings.ReplaceAll(re, `\*\*`, `.*`)
	re = strings.ReplaceAll(re, `\*`, `[^/]*`)
	m := regexp.MustCompile("^" + re + "$")
	var out []string
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(root, p)
			if m.MatchString(rel) {
				out = append(out, rel)
			}
		}
		return nil
	})
	return out
}

func TestJenkinsfileStepAgainstCluster(t *testing.T) {
	sh, junit, archive := jenkinsfileStep(t)
	j := newJob(t, "v1", "tc_ctx1_gen1_2nodes", nil)

	// A previous build's results in the kept workspace. The Jenkinsfile
	// deletes the folder before its sh step; the test does what that
	// step would, if the Jenkinsfile still has it.
	stale := filepath.Join(j.workspace, "disagg-runner", "jenkins-disagg-perf-41-tc_ctx1_gen1_2nodes-00000000", "results", "results.xml")
	os.MkdirAll(filepath.Dir(stale), 0o755)
	os.WriteFile(stale, []byte(`<testsuite tests="1" failures="0" errors="0"/>`), 0o644)
	jf, _ := os.ReadFile("Jenkinsfile")
	if regexp.MustCompile(`dir\('disagg-runner'\)\s*\{\s*deleteDir\(\)\s*\}[\s\S]*\bsh '`).Match(jf) {
		os.RemoveAll(filepath.Join(j.workspace, "disagg-runner"))
	}

	// A secret that the job itself prints (set -x traces the benchmark's
	// environment): the console must mask it.
	const token = "hf_TESTSECRET_0123456789"
	cfg := filepath.Join(j.checkout, "tests/integration/defs/perf/disagg/test_configs/disagg/perf/tc_ctx1_gen1_2nodes.yaml")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	data = regexp.MustCompile(`(?m)^(\s*benchmark_env_var:).*$`).ReplaceAll(data, []byte("${1} HF_TOKEN="+token))
	os.WriteFile(cfg, data, 0o644)

	cmd := exec.Command("bash", "-c", sh)
	cmd.Dir = j.workspace
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"DISAGG_RUNNER=" + binary, "BUILD_TAG=jenkins-disagg-perf-42", "BUILD_URL=https://jenkins.example/job/disagg-perf/42/",
		"STAGE_NAME=Disagg perf test", "JENKINS_HOME=/var/jenkins_home", "HF_TOKEN=" + token,
		"CLUSTER_SSH_KEY_PASSPHRASE=unused-passphrase-9876"}
	for k, v := range j.env {
		if k != "DISAGG_RUN_ID" { // Jenkins does not set it: BUILD_TAG names the run
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	t.Logf("stderr:\n%s", stderr.String())
	if err != nil {
		t.Fatalf("the Jenkinsfile's sh step failed: %v", err)
	}
	all := stdout.String() + stderr.String()
	if strings.Contains(all, "\x1b[") {
		t.Error("ANSI escape in a run without a terminal")
	}
	for _, secret := range []string{token, "unused-passphrase-9876"} {
		if strings.Contains(all, secret) {
			t.Errorf("secret %q printed", secret)
		}
	}
	if !strings.Contains(stdout.String(), "HF_TOKEN=****") {
		t.Error("the masked token does not show in the job log: the test did not exercise masking")
	}
	for n := 1; n <= 8; n++ {
		if c := strings.Count(stderr.String(), "==> stage "+string(rune('0'+n))+"/8"); c != 1 {
			t.Errorf("stage %d header printed %d times", n, c)
		}
	}
	var junitFiles []string
	for _, pattern := range strings.Split(junit, ",") { // Jenkins takes a comma-separated list
		junitFiles = append(junitFiles, antGlob(j.workspace, strings.TrimSpace(pattern))...)
	}
	if len(junitFiles) == 0 {
		t.Errorf("junit pattern %q matches nothing in the workspace", junit)
	}
	for _, f := range junitFiles {
		if strings.Contains(f, "perf-41") {
			t.Errorf("a previous build's results would be published: %s", f)
		}
	}
	got := antGlob(j.workspace, archive)
	if len(got) == 0 {
		t.Errorf("archiveArtifacts pattern %q matches nothing", archive)
	}
	t.Logf("archived: %v", got)
	for _, f := range got {
		if b, _ := os.ReadFile(filepath.Join(j.workspace, f)); bytes.Contains(b, []byte(token)) {
			t.Errorf("archived %s holds the token", f)
		}
	}
	if !regexp.MustCompile(`disagg-runner/jenkins-disagg-perf-42-tc_ctx1_gen1_2nodes-[0-9a-f]{8}/results/summary.json`).MatchString(strings.Join(got, " ")) {
		t.Errorf("the run folder is not named from BUILD_TAG: %v", got)
	}
}
