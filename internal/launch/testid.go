package launch

import (
	"fmt"
	"strings"
)

// TestID is what the generator learns from the selected test-list line.
type TestID struct {
	Line       string // the selected line, stripped
	Bracket    string // text between the last '[' and the next ']'
	ConfigName string // the config YAML's base name
	// Mode is the perf-sanity test-id mode: "e2e" or "gen_only", and in v3
	// also "gen_only_no_context"; empty for disagg-v1, whose gen-only
	// switch lives in the YAML.
	Mode string
	// Modifier is the v3 modifier after the mode ("time_breakdown"), or "".
	Modifier string
}

// ParseTestList selects the test line (v1: the first line; v2: line
// splitGroup of the non-empty lines, 0 meaning the first; v3: the same
// among the lines that are not comments) and parses its bracket content.
// path is only used in messages. For v3 it does not apply pytest-split's
// grouping, which needs the pytest line and the durations file: Generate
// does.
func ParseTestList(p Profile, data []byte, path string, splitGroup int) (TestID, error) {
	var line string
	switch p {
	case V1:
		first, _, _ := strings.Cut(string(data), "\n")
		line = pyStrip(first)
	case V2:
		lines := nonEmptyStripped(strings.Split(string(data), "\n"))
		if len(lines) == 0 {
			return TestID{}, fmt.Errorf("Test list is empty: %s", path)
		}
		if splitGroup < 0 {
			return TestID{}, fmt.Errorf("--split-group: expected 0 (first test) or a 1-based test number, got %d", splitGroup)
		}
		if splitGroup > len(lines) {
			return TestID{}, fmt.Errorf("split_group %d exceeds number of tests in test list (%d): %s", splitGroup, len(lines), path)
		}
		line = lines[0]
		if splitGroup > 0 {
			line = lines[splitGroup-1]
		}
	case V3:
		lines := runnableLines(string(data))
		if len(lines) == 0 {
			return TestID{}, fmt.Errorf("Test list is empty: %s (no line that is not blank or a # comment)", path)
		}
		var err error
		if line, err = selectTestV3(lines, splitGroup, nil, "", path, nil); err != nil {
			return TestID{}, err
		}
	default:
		return TestID{}, fmt.Errorf("unknown profile %q", p)
	}
	return parseTestLine(p, line, path)
}

func parseTestLine(p Profile, line, path string) (TestID, error) {
	if !strings.Contains(line, "[") || !strings.Contains(line, "]") {
		if p == V1 {
			return TestID{}, fmt.Errorf("%s: Invalid test list format. Expected test name with brackets: %s", path, line)
		}
		return TestID{}, fmt.Errorf("%s: Invalid test list format. Expected name with brackets: %s", path, line)
	}
	bracket := line[strings.LastIndexByte(line, '[')+1:]
	bracket, _, _ = strings.Cut(bracket, "]")
	parts := strings.Split(bracket, "-")
	id := TestID{Line: line, Bracket: bracket}

	if p == V1 {
		if len(parts) < 2 {
			return id, fmt.Errorf("%s: Invalid test name format. Expected format: prefix-config_name, got: %s", path, bracket)
		}
		if !strings.Contains(parts[0], "disagg") {
			return id, fmt.Errorf("%s: Invalid test name format. Expected format: disagg-config_name, got: %s", path, bracket)
		}
		id.ConfigName = strings.Join(parts[1:], "-")
	} else if p == V3 {
		if err := parseV3Parts(&id, parts, path); err != nil {
			return id, err
		}
	} else {
		if len(parts) < 2 {
			return id, fmt.Errorf("%s: Invalid test name (need at least prefix and config): %s", path, bracket)
		}
		if !strings.Contains(parts[0], "disagg") {
			if strings.Contains(parts[0], "aggr") {
				return id, fmt.Errorf("%s: Invalid test name prefix '%s'. Expected starts-with 'aggr' or 'disagg'. (aggregated tests are not supported by disagg-runner; only disagg[_upload]-… ids are)", path, parts[0])
			}
			return id, fmt.Errorf("%s: Invalid test name prefix '%s'. Expected starts-with 'aggr' or 'disagg'.", path, parts[0])
		}
		if len(parts) < 3 {
			return id, fmt.Errorf("%s: Invalid disagg test format. Expected disagg[_upload]-{e2e|gen_only}-{config_base}, got: %s", path, bracket)
		}
		if parts[1] != "e2e" && parts[1] != "gen_only" {
			return id, fmt.Errorf("%s: Invalid disagg benchmark_mode: %s. Expected 'e2e' or 'gen_only'.", path, parts[1])
		}
		id.Mode = parts[1]
		id.ConfigName = strings.Join(parts[2:], "-")
	}
	// The whole bracket lands unquoted in the script (v2's testOutputDir),
	// so all of it, not only the config name, must be inert in a shell.
	if err := checkTestIDText(bracket); err != nil {
		return id, fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

// parseV3Parts reads a v3 bracket: disagg[_upload]-<mode>[-time_breakdown]-<config>.
func parseV3Parts(id *TestID, parts []string, path string) error {
	bracket := id.Bracket
	if len(parts) < 2 {
		return fmt.Errorf("%s: Invalid test name (need at least prefix and config): %s", path, bracket)
	}
	if !strings.Contains(parts[0], "disagg") {
		if strings.Contains(parts[0], "aggr") {
			return fmt.Errorf("%s: Invalid test name prefix '%s'. Expected starts-with 'aggr' or 'disagg'. (aggregated tests are not supported by disagg-runner; only disagg[_upload]-… ids are)", path, parts[0])
		}
		return fmt.Errorf("%s: Invalid test name prefix '%s'. Expected starts-with 'aggr' or 'disagg'.", path, parts[0])
	}
	if len(parts) < 3 {
		return fmt.Errorf("%s: Invalid disagg test format. Expected disagg[_upload]-{e2e|gen_only|gen_only_no_context}[-{modifier}]-{config_base}, got: %s", path, bracket)
	}
	switch parts[1] {
	case "e2e", "gen_only", "gen_only_no_context":
	default:
		return fmt.Errorf("%s: Invalid disagg benchmark_mode: %s. Expected one of 'e2e', 'gen_only', 'gen_only_no_context'.", path, parts[1])
	}
	id.Mode = parts[1]
	rest := parts[2:]
	if rest[0] == "time_breakdown" {
		id.Modifier, rest = rest[0], rest[1:]
		if len(rest) == 0 {
			return fmt.Errorf("%s: Test name has a modifier but no config: %s", path, bracket)
		}
		if id.Mode != "e2e" {
			return fmt.Errorf("%s: The time_breakdown modifier is not generated for benchmark_mode '%s'; supported modes are e2e, ctx_only: %s", path, id.Mode, bracket)
		}
	}
	id.ConfigName = strings.Join(rest, "-")
	return nil
}

// checkTestIDText keeps the bracket content, which lands unquoted in the
// generated script (configYamlPath, testOutputDir), free of anything a shell
// would interpret and of path separators.
func checkTestIDText(bracket string) error {
	for _, r := range bracket {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._+-=,@%", r)) {
			return fmt.Errorf("test id [%s]: character %q is not allowed (expected letters, digits and . _ + - = , @ %%)", bracket, r)
		}
	}
	if strings.HasSuffix(bracket, "-") {
		return fmt.Errorf("test id [%s]: the config name is empty", bracket)
	}
	return nil
}
