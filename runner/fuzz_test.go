package runner

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzRunID: an accepted run id is one folder name, so that the run folder
// and the job workspace stay below WORKSPACE and CLUSTER_WORKDIR; a
// derived one is always accepted, whatever the build tag, user and config.
func FuzzRunID(f *testing.F) {
	for _, s := range []string{"r1", "../../../outside/" + strings.Repeat("a", 64), "..", "a/b", strings.Repeat("c", 250), "jenkins-perf #42", "-x", "\x00"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, id, other string) {
		if CheckRunID(id) == nil {
			ws := "/ws/disagg-runner"
			if dir := filepath.Join(ws, id); filepath.Dir(dir) != ws || filepath.Base(dir) != id || len(id) > MaxRunIDLen {
				t.Fatalf("%q accepted: run folder %s", id, dir)
			}
			if n := jobName(id); n == "" || len(n) > 64 || CheckRunID(n) != nil {
				t.Fatalf("%q: job name %q", id, n)
			}
		}
		now := time.Date(2026, 11, 26, 22, 0, 0, 0, time.UTC)
		for _, tag := range []string{id, ""} {
			derived := NewRunID(tag, other, id, []string{other}, now)
			if err := CheckRunID(derived); err != nil {
				t.Fatalf("NewRunID(%q, %q, %q): %v", tag, other, id, err)
			}
		}
	})
}

// FuzzMaskAssignments: masking is idempotent, never lengthens a value it
// leaves, and the value of a secret-named assignment never survives it.
func FuzzMaskAssignments(f *testing.F) {
	for _, s := range []string{
		"+ export HF_TOKEN=hf_abc", `pytestCommand=hf_token=abc Api_Key="k 1" A=1`, "MAX_TOKENS=3 KEY_COUNT=2", `X_AUTH='unclosed`,
		"--hf-token=x", "apiKey=1\nSLACK_WEBHOOK_URL=https://x",
	} {
		f.Add(s, "s3cr3t")
	}
	f.Fuzz(func(t *testing.T, line, secret string) {
		once := MaskAssignments([]byte(line))
		if twice := MaskAssignments(once); string(twice) != string(once) {
			t.Fatalf("%q: masked %q, again %q", line, once, twice)
		}
		// A plain secret value after a secret name is gone.
		if len(secret) < 4 || strings.ContainsAny(secret, " \t\n\r\v\f\"';&|=*") || strings.ContainsAny(line, secret[:1]) {
			return
		}
		for _, name := range []string{"HF_TOKEN", "hf_token", "Api_Key", "SLACK_WEBHOOK_URL", "db-password"} {
			in := line + " " + name + "=" + secret
			if out := string(MaskAssignments([]byte(in))); strings.Contains(out, secret) {
				t.Fatalf("%q: masked as %q", in, out)
			}
		}
	})
}
