package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"github.com/disagg-runner/disagg-runner/internal/inputfile"
	"github.com/disagg-runner/disagg-runner/prefix"
	"github.com/disagg-runner/disagg-runner/runner"
)

// listedTest is one test of a run of several: its config name, and the
// test id its line gave, when it gave one (the plan's must match it).
type listedTest struct {
	config string
	testID string
	where  string // "CONFIG_NAME" or "FILE:LINE", for messages
}

// perTest is each listed test's Settings: s, with the test's config and
// name (the config's), and the test id its line gave.
func perTest(s runner.Settings, tests []listedTest) []runner.Settings {
	out := make([]runner.Settings, len(tests))
	for i, t := range tests {
		st := s
		st.ConfigName, st.Test, st.WantTestID, st.WantFrom = t.config, t.config, t.testID, t.where
		out[i] = st
	}
	return out
}

// maxTests bounds a test list: a run of more jobs than this is a list
// written by mistake, not a perf suite.
const maxTests = 200

// testList resolves the tests of a run: --tests FILE (one config name or
// full test id per line; # comments and blank lines ignored), or
// --config with commas. One config is a run of one, as always.
func testList(configs, file, readAs string) ([]listedTest, error) {
	var tests []listedTest
	switch {
	case file != "" && strings.TrimSpace(configs) != "":
		return nil, badInput(fmt.Errorf("both --tests %s and CONFIG_NAME=%q are set: expected one of them", file, configs))
	case file != "":
		data, err := inputfile.Read(readAs)
		if err != nil {
			return nil, badInput(fmt.Errorf("--tests %s: %w", file, err))
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if i := strings.Index(line, "#"); i >= 0 && !strings.Contains(line[:i], "[") {
				line = strings.TrimSpace(line[:i])
			}
			if line == "" {
				continue
			}
			t, err := parseTestLine(line)
			if err != nil {
				return nil, badInput(fmt.Errorf("%s:%d: %w", file, n, err))
			}
			t.where = fmt.Sprintf("%s:%d", file, n)
			tests = append(tests, t)
		}
		if err := sc.Err(); err != nil {
			return nil, badInput(fmt.Errorf("--tests %s: %w", file, err))
		}
		if len(tests) == 0 {
			return nil, badInput(fmt.Errorf("--tests %s: no test in it (expected one config name or test id per line)", file))
		}
	case strings.Contains(configs, ","):
		for _, c := range strings.Split(configs, ",") {
			c = strings.TrimSpace(c)
			if c == "" {
				return nil, badInput(fmt.Errorf("CONFIG_NAME=%q: an empty name in the comma-separated list", configs))
			}
			if err := prefix.CheckConfigName(c); err != nil {
				return nil, badInput(fmt.Errorf("CONFIG_NAME: %w", err))
			}
			tests = append(tests, listedTest{config: c, where: "CONFIG_NAME"})
		}
	default:
		return []listedTest{{config: configs, where: "CONFIG_NAME"}}, nil
	}
	if len(tests) > maxTests {
		return nil, badInput(fmt.Errorf("%d tests listed: expected at most %d", len(tests), maxTests))
	}
	seen := map[string]string{}
	for _, t := range tests {
		if first, dup := seen[t.config]; dup {
			return nil, badInput(fmt.Errorf("%s: config %s is listed twice (first at %s)", t.where, t.config, first))
		}
		seen[t.config] = t.where
	}
	return tests, nil
}

// parseTestLine reads a config name, or a test id as the runner writes
// it (perf/test_perf_sanity.py::test_e2e[disagg_upload-[MODE-]NAME]),
// whose config name is taken from it; the plan checks that the config
// makes exactly that id.
func parseTestLine(line string) (listedTest, error) {
	if !strings.Contains(line, "::") {
		if err := prefix.CheckConfigName(line); err != nil {
			return listedTest{}, err
		}
		return listedTest{config: line}, nil
	}
	open, end := strings.Index(line, "[disagg_upload-"), len(line)-1
	if open < 0 || line[end] != ']' {
		return listedTest{}, fmt.Errorf("test id %q: expected perf/test_perf_sanity.py::test_e2e[disagg_upload-<config>] or a config name", line)
	}
	name := line[open+len("[disagg_upload-") : end]
	for _, mode := range []string{"e2e-", "gen_only-"} {
		name = strings.TrimPrefix(name, mode)
	}
	if err := prefix.CheckConfigName(name); err != nil {
		return listedTest{}, fmt.Errorf("test id %q: %w", line, err)
	}
	return listedTest{config: name, testID: line}, nil
}
