package runner

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestConsoleMasksSecretsAcrossWrites(t *testing.T) {
	var out, logb bytes.Buffer
	con := NewConsole(&out, &logb, false, []string{"hf_SECRET123", "abc"})
	// The secret is split across two writes, as a streamed log may split it.
	con.Out.Write([]byte("export HF_TOKEN=hf_SEC"))
	con.Out.Write([]byte("RET123\nnext abc line\npartial"))
	con.Flush()
	if got := out.String(); got != "export HF_TOKEN=****\nnext abc line\npartial" {
		t.Errorf("job log: %q", got)
	}
	con.Log.Info("key passphrase is hf_SECRET123")
	if strings.Contains(logb.String(), "hf_SECRET123") || !strings.Contains(logb.String(), "****") {
		t.Errorf("runner line: %q", logb.String())
	}
	if strings.Contains(logb.String(), "\x1b[") {
		t.Errorf("colour written to a non-terminal: %q", logb.String())
	}
}

func TestConsoleMasksSecretNamedAssignments(t *testing.T) {
	var out bytes.Buffer
	con := NewConsole(&out, &bytes.Buffer{}, false, nil)
	con.Out.Write([]byte(`+ export 'pytestCommand=HF_TOKEN=hf_abc NGC_API_KEY="k 1" MY_PASSWD='x' A=1 MAX_TOKENS=3 TOKEN=t'` + "\nplain line\n"))
	con.Out.Write([]byte("partial"))
	con.Flush()
	want := `+ export 'pytestCommand=HF_TOKEN=**** NGC_API_KEY=**** MY_PASSWD=**** A=1 MAX_TOKENS=3 TOKEN=****'` + "\nplain line\npartial"
	if out.String() != want {
		t.Errorf("got  %q\nwant %q", out.String(), want)
	}
}

func TestRedactExports(t *testing.T) {
	in := "export HF_TOKEN=abc\n  export NGC_API_KEY=\"x y\"\nexport jobWorkspace=/ws\nMY_PASSWORD=1\nexport BENCHMARK_ENV_VARS=\"HF_TOKEN=hf_1 A=2\""
	want := "export HF_TOKEN=****\n  export NGC_API_KEY=****\nexport jobWorkspace=/ws\nMY_PASSWORD=****\nexport BENCHMARK_ENV_VARS=\"HF_TOKEN=**** A=2\""
	if got := string(redactExports([]byte(in))); got != want {
		t.Errorf("got %q", got)
	}
}

func TestNewRunID(t *testing.T) {
	now := time.Date(2026, 11, 26, 22, 0, 0, 0, time.UTC)
	stageA, stageB := []string{"GB200 perf"}, []string{"B200 perf"}
	got := NewRunID("jenkins-perf/disagg #42", "u", "cfg_a", stageA, now)
	if !regexp.MustCompile(`^jenkins-perf_disagg_42-cfg_a-[0-9a-f]{8}$`).MatchString(got) {
		t.Errorf("from BUILD_TAG: %q", got)
	}
	if again := NewRunID("jenkins-perf/disagg #42", "u", "cfg_a", stageA, now); again != got {
		t.Errorf("a retried step gets another run id: %q vs %q", again, got)
	}
	if other := NewRunID("jenkins-perf/disagg #42", "u", "cfg_a", stageB, now); other == got {
		t.Errorf("two stages of one build share run id %q", got)
	}
	a, b := NewRunID("", "alice", "cfg", nil, now), NewRunID("", "alice", "cfg", nil, now)
	if !strings.HasPrefix(a, "alice-20261126-220000-") || !strings.HasSuffix(a, "-cfg") || a == b {
		t.Errorf("manual run ids %q %q: want user, time, a random suffix and the config", a, b)
	}
}

func TestMaskFileStreamsAndRewritesOnlyWhenNeeded(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "job.log")
	long := strings.Repeat("x", 600<<10) // longer than the read buffer
	os.WriteFile(secret, []byte("a\n"+long+"\nexport HF_TOKEN=hf_abc\nlast HF_TOKEN=x"), 0o640)
	if err := maskFile(secret); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(secret)
	if want := "a\n" + long + "\nexport HF_TOKEN=****\nlast HF_TOKEN=****"; string(got) != want {
		t.Errorf("masked file differs (%d bytes, want %d)", len(got), len(want))
	}
	if info, _ := os.Stat(secret); info.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 kept", info.Mode().Perm())
	}

	clean := filepath.Join(dir, "clean.log")
	os.WriteFile(clean, []byte("nothing secret\n"), 0o644)
	before, _ := os.Stat(clean)
	if err := maskFile(clean); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(clean)
	if !os.SameFile(before, after) {
		t.Error("a file with nothing to mask was rewritten")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}
