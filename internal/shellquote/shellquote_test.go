package shellquote

import (
	"os/exec"
	"strings"
	"testing"
)

// roundTrip asks bash to print the words back: what comes out must be
// exactly what went in, whatever the words hold.
func roundTrip(t *testing.T, words ...string) []string {
	t.Helper()
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = Quote(w)
	}
	return roundTripWords(t, quoted...)
}

// roundTripWords has bash print already quoted words back.
func roundTripWords(t *testing.T, quoted ...string) []string {
	t.Helper()
	out, err := exec.Command("bash", "-c", "printf '%s\\0' "+strings.Join(quoted, " ")).Output()
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	got := strings.Split(string(out), "\x00")
	return got[:len(got)-1]
}

func TestRoundTrip(t *testing.T) {
	words := []string{"", "plain", "two words", "it's", `"double"`, "$(reboot)", "`reboot`", "${HOME}", "a;b&c|d",
		"new\nline", "tab\there", "*?[glob]", "~user", "#comment", "back\\slash", "-n", "=", "é ü 日本", "'", "''", "\\'"}
	got := roundTrip(t, words...)
	if len(got) != len(words) {
		t.Fatalf("%d words came back, want %d: %q", len(got), len(words), got)
	}
	for i := range words {
		if got[i] != words[i] {
			t.Errorf("word %q came back as %q (quoted %s)", words[i], got[i], Quote(words[i]))
		}
	}
}

func TestShlexQuote(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "''",
		"/scratch/llm-models":    "/scratch/llm-models",
		"/mnt/llm models/o'neil": `'/mnt/llm models/o'"'"'neil'`,
		"LLM_MODELS_ROOT='/mnt/llm models/o'\"'\"'neil'": `'LLM_MODELS_ROOT='"'"'/mnt/llm models/o'"'"'"'"'"'"'"'"'neil'"'"''`,
	} {
		if got := ShlexQuote(in); got != want {
			t.Errorf("ShlexQuote(%q) = %s, want %s", in, got, want)
		}
	}
	// It reads back as what went in, as Quote's words do.
	words := []string{"", "it's", "''", "$(reboot)", "new\nline", "a b"}
	var quoted []string
	for _, w := range words {
		quoted = append(quoted, ShlexQuote(w))
	}
	out, err := exec.Command("bash", "-c", "printf '%s\\0' "+strings.Join(quoted, " ")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(string(out), "\x00"); strings.Join(got[:len(got)-1], "|") != strings.Join(words, "|") {
		t.Errorf("came back as %q", got)
	}
}

func TestSafeWordsStayReadable(t *testing.T) {
	for _, w := range []string{"/lustre/ci/ws-42/job-output.log", "--mpi=pmix", "user@host:22", "a,b+c%d"} {
		if Quote(w) != w {
			t.Errorf("Quote(%q) = %s, want it unchanged", w, Quote(w))
		}
	}
}

func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "a b", "it's", "$(x)", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, 0) {
			return // a shell word cannot hold NUL
		}
		if got := roundTrip(t, s); len(got) != 1 || got[0] != s {
			t.Fatalf("%q came back as %q", s, got)
		}
		// ShlexQuote reads back unchanged too, and differs from Quote only
		// in how it writes a single quote inside a quoted word.
		if got := roundTripWords(t, ShlexQuote(s)); len(got) != 1 || got[0] != s {
			t.Fatalf("ShlexQuote(%q) = %s came back as %q", s, ShlexQuote(s), got)
		}
		if !strings.Contains(s, "'") && ShlexQuote(s) != Quote(s) {
			t.Fatalf("ShlexQuote(%q) = %s, Quote %s", s, ShlexQuote(s), Quote(s))
		}
	})
}
