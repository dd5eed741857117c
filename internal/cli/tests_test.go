package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTestList(t *testing.T) {
	dir := t.TempDir()
	write := func(text string) string {
		p := filepath.Join(dir, "list.txt")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	names := func(ts []listedTest) string {
		var n []string
		for _, x := range ts {
			n = append(n, x.config+"|"+x.testID)
		}
		return strings.Join(n, " ")
	}
	// One config is a run of one; commas make a list.
	if ts, err := testList("a", "", ""); err != nil || names(ts) != "a|" {
		t.Fatalf("%v %v", ts, err)
	}
	if ts, err := testList("a, b,c", "", ""); err != nil || names(ts) != "a| b| c|" {
		t.Fatalf("%q %v", names(ts), err)
	}
	p := write("# perf list\n\nconfig_one\n  perf/test_perf_sanity.py::test_e2e[disagg_upload-e2e-config_two]  \nconfig_three # trailing comment\n")
	ts, err := testList("", p, p)
	if err != nil || names(ts) != "config_one| config_two|perf/test_perf_sanity.py::test_e2e[disagg_upload-e2e-config_two] config_three|" {
		t.Fatalf("%q %v", names(ts), err)
	}
	if ts[1].where != p+":4" {
		t.Errorf("where %q", ts[1].where)
	}

	for _, c := range []struct{ configs, text, want string }{
		{"x", "a\n", "both --tests"},
		{"", "a\nb\na\n", ":3: config a is listed twice (first at "},
		{"", "# nothing\n\n", "no test in it"},
		{"", "a/../b\n", ":1: "},
		{"", "perf/test.py::test_e2e[other-a]\n", "expected perf/test_perf_sanity.py::test_e2e[disagg_upload-<config>]"},
		{"a,,b", "", "an empty name"},
		{"a,b/c", "", "CONFIG_NAME"},
	} {
		file := ""
		if c.text != "" {
			file = write(c.text)
		}
		_, err := testList(c.configs, file, file)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q %q: %v, want %q", c.configs, c.text, err, c.want)
		}
		if _, ok := err.(*usageError); err != nil && !ok {
			t.Errorf("%q %q: %T is not bad input (exit 11)", c.configs, c.text, err)
		}
	}
}
