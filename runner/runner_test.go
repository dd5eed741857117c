package runner

import (
	"bytes"
	"fmt"
	"math/rand/v2"
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

// However a stream is cut into writes, the console shows what masking the
// whole of it at once shows.
func TestConsoleMasksAlikeHoweverTheStreamIsCut(t *testing.T) {
	log := "start\nexport HF_TOKEN=hf_SECRET123 A=1\n\nplain hf_SECRET123 line\nNGC_API_KEY=\"k 1\"\nno newline at the end hf_SECRET123"
	var whole bytes.Buffer
	ref := NewConsole(&whole, &bytes.Buffer{}, false, []string{"hf_SECRET123"})
	ref.Out.Write([]byte(log))
	ref.Flush()
	if strings.Contains(whole.String(), "hf_SECRET123") {
		t.Fatalf("unmasked: %q", whole.String())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		var out bytes.Buffer
		con := NewConsole(&out, &bytes.Buffer{}, false, []string{"hf_SECRET123"})
		for rest := []byte(log); len(rest) > 0; {
			n := 1 + rng.IntN(min(len(rest), 12))
			con.Out.Write(rest[:n])
			rest = rest[n:]
		}
		con.Flush()
		if out.String() != whole.String() {
			t.Fatalf("got  %q\nwant %q", out.String(), whole.String())
		}
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

	for name, text := range map[string]string{"clean.log": "nothing secret\n", "masked.log": "export HF_TOKEN=****\n" + long + " API_KEY=****\n"} {
		clean := filepath.Join(dir, name)
		os.WriteFile(clean, []byte(text), 0o644)
		before, _ := os.Stat(clean)
		if err := maskFile(clean); err != nil {
			t.Fatal(err)
		}
		after, _ := os.Stat(clean)
		if !os.SameFile(before, after) {
			t.Errorf("%s, with nothing left to mask, was rewritten", name)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

// A job log masked as it streams, cut into pieces anywhere, is byte for
// byte the file maskFile makes of the whole: the collected copy needs no
// second pass.
func TestLineMaskerMatchesMaskFile(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var b strings.Builder
	b.WriteString("plain line\n+ export HF_TOKEN=hf_abc\nA=1 B=2\n\nexport API_KEY='a b' x=y\n")
	// Long lines, and secrets across maskFile's piece boundaries.
	for _, at := range []int{maskPiece - 20, maskPiece - 9, maskPiece - 1, maskPiece, maskPiece + 3, 2*maskPiece - 4} {
		b.WriteString(strings.Repeat("x", at))
		b.WriteString(" HF_TOKEN=hf_longline_secret tail\n")
	}
	b.WriteString(strings.Repeat("y", maskPiece-1) + "\n")
	b.WriteString(strings.Repeat("z", maskPiece) + "\n")
	for range 2000 {
		switch rng.IntN(4) {
		case 0:
			b.WriteString("rank output with no assignment at all\n")
		case 1:
			fmt.Fprintf(&b, "step %d PASSWORD=p%d next=%d\n", rng.IntN(100), rng.IntN(100), rng.IntN(100))
		case 2:
			b.WriteString("=\n==\nTOKEN=\n")
		default:
			fmt.Fprintf(&b, "SECRET_X=\"quoted %d\" after\n", rng.IntN(9))
		}
	}
	for _, tail := range []string{"", "last HF_TOKEN=x", strings.Repeat("w", maskPiece) + " HF_TOKEN=end"} {
		data := b.String() + tail
		want := maskedFile(t, data)
		if bytes.Equal(want, []byte(data)) || bytes.Contains(want, []byte("hf_abc")) {
			t.Fatal("the case does not test what it should: maskFile masked nothing")
		}
		for _, max := range []int{len(data), 3 * maskPiece, 70000, 4096, 7} {
			got, held := maskedStream(data, func() int { return 1 + rng.IntN(max) })
			if !bytes.Equal(got, want) {
				i := 0
				for i < min(len(got), len(want)) && got[i] == want[i] {
					i++
				}
				t.Errorf("tail %.8q, pieces up to %d: differs from maskFile at byte %d of %d (%d): %.40q vs %.40q",
					tail, max, i, len(want), len(got), got[i:], want[i:])
			}
			if held > 2*maskPiece {
				t.Errorf("pieces up to %d: held %d bytes", max, held)
			}
		}
	}
}

// TestNewRunIDBounded: a derived run id is one folder name of at most
// MaxRunIDLen characters whatever the config name's length (a 250
// character one made it longer than a file name may be), still unique per
// input and ending as before (the job name is its tail).
func TestNewRunIDBounded(t *testing.T) {
	now := time.Date(2026, 11, 26, 22, 0, 0, 0, time.UTC)
	long := strings.Repeat("c", 250)
	for _, tag := range []string{"jenkins-perf-disagg-42", ""} {
		a := NewRunID(tag, "alice", long+"1", []string{"s"}, now)
		b := NewRunID(tag, "alice", long+"2", []string{"s"}, now)
		c := NewRunID(tag, "alice", "x"+long+"1", []string{"s"}, now)
		for _, id := range []string{a, b, c} {
			if len(id) > MaxRunIDLen || CheckRunID(id) != nil {
				t.Errorf("BUILD_TAG %q: run id %q (%d characters): %v", tag, id, len(id), CheckRunID(id))
			}
		}
		if a == b || a == c {
			t.Errorf("BUILD_TAG %q: distinct configs share a run id: %q %q %q", tag, a, b, c)
		}
		if tag != "" && NewRunID(tag, "alice", long+"1", []string{"s"}, now) != a {
			t.Errorf("a retried step gets another run id")
		}
	}
	if id := NewRunID("jenkins-x", "u", long, nil, now); !strings.HasPrefix(id, "jenkins-x-ccc") {
		t.Errorf("the head is lost: %q", id)
	}
	if id := NewRunID("", "-_.u", "cfg", nil, now); CheckRunID(id) != nil {
		t.Errorf("%q: %v", id, CheckRunID(id))
	}
}

func TestCheckRunID(t *testing.T) {
	for _, ok := range []string{"r1", "jenkins-perf_disagg_42-cfg-0a1b2c3d", "A.b+c-d_e", strings.Repeat("x", MaxRunIDLen), "a" + strings.Repeat("_", 80)} {
		if err := CheckRunID(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
		// Its job name (the tail) is never empty.
		if n := jobName(ok); n == "" || !runIDRule.MatchString(n) || len(n) > 64 {
			t.Errorf("%q: job name %q", ok, n)
		}
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/b", "/abs", "x y", "a\nb", "-x", ".hidden", "_x", "a$b", "a;b", "é", strings.Repeat("x", MaxRunIDLen+1)} {
		if err := CheckRunID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error on several lines: %q", bad, err)
		}
	}
}

// TestConsoleEscapesControlBytes: a runner line never carries a raw
// control byte (an ESC or BEL from a config or test list would act on the
// terminal; a line break would forge a line), in the message or a value;
// the job log on stdout stays byte for byte.
func TestConsoleEscapesControlBytes(t *testing.T) {
	for _, jsonFormat := range []bool{false, true} {
		var out, logb bytes.Buffer
		con := NewConsole(&out, &logb, jsonFormat, nil)
		con.Log.Error("✗ test list: got \x1b]0;pwned\a \x00\xff\nINFO forged", "fix", "x\x1b[31m")
		got := logb.String()
		if strings.ContainsAny(got, "\x1b\a\x00\xff") || strings.Count(got, "\n") != 1 {
			t.Errorf("json %v: raw control bytes in %q", jsonFormat, got)
		}
		if !jsonFormat && !strings.Contains(got, `got \x1b]0;pwned\x07 \x00\xff\nINFO forged`) {
			t.Errorf("escaped message not found in %q", got)
		}
		con.Out.Write([]byte("job \x1b[1mlog\n"))
		if out.String() != "job \x1b[1mlog\n" {
			t.Errorf("the job log was changed: %q", out.String())
		}
	}
}

func TestReportTableEscapesControlBytes(t *testing.T) {
	r := &Report{}
	r.Add(Item{Name: "x\x1b[2J", Detail: "d\a\x00", Fix: "f\nforged"})
	var b bytes.Buffer
	r.WriteTable(&b)
	if strings.ContainsAny(b.String(), "\x1b\a\x00") || strings.Count(b.String(), "\n") != 3 {
		t.Errorf("table %q", b.String())
	}
}

// TestMaskSecretNames: a name says its value is secret when one of its
// parts (split at _ and -, and between a lower and an upper case letter)
// is, in any case, TOKEN, SECRET, PASSWORD, PASSWD, PASSPHRASE, PASS,
// CREDENTIAL(S), CRED(S), WEBHOOK, COOKIE(S), AUTH, AUTHORIZATION, BEARER,
// SESSION, PRIVATE or APIKEY, or when its last part is KEY; ordinary names
// that only contain such letters keep their values.
func TestMaskSecretNames(t *testing.T) {
	secret := []string{
		"HF_TOKEN", "hf_token", "Api_Key", "CREDENTIALS", "SLACK_WEBHOOK_URL", "apiKey", "hfToken", "--hf-token",
		"DB_PASS", "MY_COOKIE", "X_AUTH", "SESSION_ID", "PRIVATE_KEY", "AWS_SECRET_ACCESS_KEY", "KEY", "NGC_API_KEY",
		"GITHUB_CREDENTIAL", "my_password", "Passphrase", "BEARER_TOKEN", "GH_APIKEY", "OAuthToken", "SSH_KEY",
	}
	plain := []string{
		"MAX_TOKENS", "KEY_COUNT", "MAX_KEY_LEN", "TOKENIZER", "PWD", "PATH", "HF_HOME", "CUDA_VISIBLE_DEVICES",
		"BYPASS", "NUM_KEYS", "keyCount", "maxTokens", "SSH_KEY_PATH", "monkey", "KEYBOARD", "AUTHOR", "PASSES",
		"max_num_tokens", "TRTLLM_ENABLE_PDL", "pytestCommand",
	}
	for _, name := range secret {
		for _, form := range []string{"%s=s3cr3t-v4lue", `%s="s3cr3t v4lue"`, `%s='s3cr3t v4lue'`, `export %s="s3cr3t-v4lue`} {
			line := "+ " + fmt.Sprintf(form, name) + " next"
			got := string(MaskAssignments([]byte(line)))
			if strings.Contains(got, "s3cr3t") || !strings.Contains(got, name+"=****") {
				t.Errorf("%q: masked as %q", line, got)
			}
		}
	}
	for _, name := range plain {
		line := "+ " + name + "=v4lue A=1"
		if got := string(MaskAssignments([]byte(line))); got != line {
			t.Errorf("%q: masked as %q", line, got)
		}
	}
	// A value is a whole shell word: quoted parts and what follows them.
	for in, want := range map[string]string{
		`HF_TOKEN="abc"def next`:               `HF_TOKEN=**** next`,
		`HF_TOKEN=ab'c d'e next`:               `HF_TOKEN=**** next`,
		`'pytestCommand=A=1 TOKEN=t'`:          `'pytestCommand=A=1 TOKEN=****'`,
		"HF_TOKEN=\"unclosed value\nnext line": "HF_TOKEN=****\nnext line",
	} {
		if got := string(MaskAssignments([]byte(in))); got != want {
			t.Errorf("%q masked as %q, want %q", in, got, want)
		}
	}
	// A secret inside another assignment's value is still found.
	line := `+ export 'pytestCommand=hf_token=abc Api_Key="k 1" A=1'`
	if got, want := string(MaskAssignments([]byte(line))), `+ export 'pytestCommand=hf_token=**** Api_Key=**** A=1'`; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// redactExports uses the same rule.
	if got := string(redactExports([]byte("export Slack_Webhook_Url=https://hooks/x\nexport KEY_COUNT=3"))); got != "export Slack_Webhook_Url=****\nexport KEY_COUNT=3" {
		t.Errorf("redactExports: %q", got)
	}
}

// A line too long to mask whole is masked in pieces; an assignment that
// a fixed-size cut would split (its name, or its value) is still masked
// whole, wherever the piece boundary falls in it.
func TestMaskFileLongLineSecretAcrossPieces(t *testing.T) {
	const secret = "hf_longline_secret_value"
	assignments := []string{
		"HF_TOKEN=" + secret,
		`HF_TOKEN="` + secret + ` with blanks"`,
		"pytestCommand=HF_TOKEN=" + secret,
		// A quote that closes past the cut: all before it is AUTH's value.
		`AUTH=ab"cd TOKEN=zz ` + secret + ` blanks"`,
	}
	for _, a := range assignments {
		for at := maskPiece - len(a) - 2; at <= maskPiece+1; at++ {
			line := strings.Repeat("x", at) + " " + a + " tail\n"
			got := maskedFile(t, line)
			// The line masked whole is what the pieces must give.
			want := string(MaskAssignments([]byte(line)))
			if strings.Contains(want, "secret") || !strings.HasSuffix(want, "=**** tail\n") {
				t.Fatalf("the case does not test what it should: masked whole, %q gives ...%q", a, want[at:])
			}
			if string(got) != want {
				t.Fatalf("%q at byte %d of a %d-byte line: masked to ...%q, want ...%q", a, at+1, len(line), got[max(0, at-8):], want[max(0, at-8):])
			}
			// As it streams, in writes that cut the line elsewhere.
			if streamed, _ := maskedStream(line, func() int { return 4093 }); string(streamed) != want {
				t.Fatalf("%q at byte %d, streamed: masked to ...%q", a, at+1, streamed[max(0, at-8):])
			}
		}
	}
}

// maskedFile is what maskFile makes of a file holding data.
func maskedFile(t *testing.T, data string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "job-output.log")
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := maskFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// maskedStream is what a lineMasker passes on for data written to it in
// writes of next() bytes, and the most it held (its buffer's capacity).
func maskedStream(data string, next func() int) (out []byte, held int) {
	var got bytes.Buffer
	m := lineMasker{emit: func(p []byte) { got.Write(p) }}
	for p := []byte(data); len(p) > 0; {
		n := min(next(), len(p))
		m.Write(p[:n])
		p = p[n:]
	}
	m.flush()
	return got.Bytes(), cap(m.part)
}
