package launch

import (
	"strings"
	"unicode/utf8"
)

const pytestLineMarker = "export pytestCommand="

// findPytestLine returns the first prefix line that exports pytestCommand.
func findPytestLine(lines []string) (string, bool) {
	for _, l := range lines {
		if strings.Contains(l, pytestLineMarker) {
			return l, true
		}
	}
	return "", false
}

// GroupPytestArgs splits a command line on whitespace and groups pytest's
// options with their values, so that dropping an option drops its value
// too. Tokens up to and including the first `pytest` stay single; without
// a `pytest` token every token stays single.
func GroupPytestArgs(line string) []string {
	tokens := pyFields(line)
	start := -1
	for i, t := range tokens {
		if t == "pytest" {
			start = i
			break
		}
	}
	if start < 0 {
		return tokens
	}
	groups := append([]string(nil), tokens[:start+1]...)
	for i := start + 1; i < len(tokens); {
		t := tokens[i]
		nextIsValue := i+1 < len(tokens) && !strings.HasPrefix(tokens[i+1], "-")
		switch {
		case strings.HasPrefix(t, "--") && strings.Contains(t, "="):
			groups = append(groups, t)
			i++
		case strings.HasPrefix(t, "--") && nextIsValue:
			groups = append(groups, t+" "+tokens[i+1])
			i += 2
		case strings.HasPrefix(t, "-") && !strings.HasPrefix(t, "--") && runeLen(t) == 2 && nextIsValue:
			groups = append(groups, t+" "+tokens[i+1])
			i += 2
		default:
			groups = append(groups, t)
			i++
		}
	}
	return groups
}

// derivePytestLine renames pytestCommand in the line, groups it and drops
// the groups for which drop is true.
func derivePytestLine(line, newName string, drop func(string) bool) string {
	renamed := strings.ReplaceAll(line, "pytestCommand", newName)
	var kept []string
	for _, g := range GroupPytestArgs(renamed) {
		if !drop(g) {
			kept = append(kept, g)
		}
	}
	return strings.Join(kept, " ")
}

func isLLMAPILaunch(g string) bool { return strings.Contains(g, "trtllm-llmapi-launch") }

func isOutputFileOption(g string) bool {
	return strings.Contains(g, "--csv") || strings.Contains(g, "--cov") || strings.Contains(g, "--periodic")
}

// testOutputDir is the per-test output folder: the --output-dir value of
// the pytest line joined with the bracket content.
func testOutputDir(pytestLine, bracket string) string {
	dir, ok := outputDirValue(pytestLine)
	if !ok {
		return ""
	}
	if bracket == "" {
		return dir
	}
	return pyJoin(dir, bracket)
}

// outputDirValue does what upstream's re.search(r'--output-dir[=\s]+"?([^"\s]+)"?')
// does, backtracking included, with Python's notion of whitespace (RE2's
// \s lacks \v and the Unicode spaces).
func outputDirValue(line string) (string, bool) {
	const flag = "--output-dir"
	for from := 0; ; {
		i := strings.Index(line[from:], flag)
		if i < 0 {
			return "", false
		}
		j := from + i + len(flag)
		// ends[k] is the end of the k+1-th character of the run of '=' and
		// whitespace after the flag.
		var ends []int
		for pos := j; pos < len(line); {
			r, size := utf8.DecodeRuneInString(line[pos:])
			if r != '=' && !pySpace(r) {
				break
			}
			pos += size
			ends = append(ends, pos)
		}
		for k := len(ends) - 1; k >= 0; k-- {
			pos := ends[k]
			if pos < len(line) && line[pos] == '"' {
				if v := valueRun(line[pos+1:]); v != "" {
					return v, true
				}
			}
			if v := valueRun(line[pos:]); v != "" {
				return v, true
			}
		}
		from = from + i + 1
	}
}

// valueRun is the leading run of characters that are neither whitespace nor '"'.
func valueRun(s string) string {
	end := strings.IndexFunc(s, func(r rune) bool { return r == '"' || pySpace(r) })
	if end < 0 {
		return s
	}
	return s[:end]
}
