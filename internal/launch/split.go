package launch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"

	"github.com/disagg-runner/disagg-runner/internal/py"
	"github.com/disagg-runner/disagg-runner/internal/termtext"
)

// runnableLines are the test-list lines v3 considers: stripped, non-empty,
// not comments.
func runnableLines(data string) []string {
	var out []string
	for _, l := range strings.Split(data, "\n") {
		if s := pyStrip(l); s != "" && !strings.HasPrefix(s, "#") {
			out = append(out, s)
		}
	}
	return out
}

// testMarkers are the words after a test id that say how CI treats it.
var testMarkers = []string{"XFAIL", "SKIP", "UNSTABLE", "TIMEOUT"}

// splitMarker finds a line's first marker: one of testMarkers preceded by
// whitespace and followed by whitespace, '(' or the end. The node id is
// the text before that whitespace; without a marker it is the whole line.
func splitMarker(line string) (nodeID, marker string) {
	for i := 0; i < len(line); {
		r, size := decodeRune(line[i:])
		if !pySpace(r) {
			i += size
			continue
		}
		start := i
		for i < len(line) {
			r, size := decodeRune(line[i:])
			if !pySpace(r) {
				break
			}
			i += size
		}
		for _, m := range testMarkers {
			rest, ok := strings.CutPrefix(line[i:], m)
			if !ok {
				continue
			}
			if rest == "" || rest[0] == '(' {
				return line[:start], m
			}
			if r, _ := decodeRune(rest); pySpace(r) {
				return line[:start], m
			}
		}
	}
	return line, ""
}

// splitOptions are the pytest-split options read from the pytest line.
type splitOptions struct {
	words []string // the pytest line's command as shell words
}

func (o splitOptions) value(name string) (string, bool) { return optionValue(o.words, name) }

// selectTestV3 picks the test-list line v3 runs: the first runnable line,
// the splitGroup-th one, or the one pytest-split would run in that group
// when the pytest line asks for pytest-split. words is the pytest line as
// shell words (nil without a pytest line).
func selectTestV3(lines []string, splitGroup int, words []string, llmSrc, listPath string, read ReadFunc) (string, error) {
	if splitGroup < 0 {
		return "", fmt.Errorf("--split-group: expected 0 (first test) or a 1-based test number, got %d", splitGroup)
	}
	if splitGroup == 0 {
		return lines[0], nil
	}
	splitsText, hasSplits := optionValue(words, "--splits")
	groupText, hasGroup := optionValue(words, "--group")
	if !hasSplits || !hasGroup {
		if splitGroup > len(lines) {
			return "", fmt.Errorf("split_group %d exceeds number of tests in test list (%d): %s", splitGroup, len(lines), listPath)
		}
		return lines[splitGroup-1], nil
	}
	algo, hasAlgo := optionValue(words, "--splitting-algorithm")
	if !hasAlgo || algo != "least_duration" {
		shown := "None"
		if hasAlgo {
			shown = py.Repr(algo)
		}
		return "", fmt.Errorf("Multi-node perf launcher only supports pytest-split's least_duration algorithm, got %s (in the pytestCommand line's --splitting-algorithm)", shown)
	}
	splits, ok := py.IntString(splitsText)
	if !ok {
		return "", fmt.Errorf("pytest --splits in the pytestCommand line: expected an integer, got %s", py.Repr(splitsText))
	}
	group, ok := py.IntString(groupText)
	if !ok {
		return "", fmt.Errorf("pytest --group in the pytestCommand line: expected an integer, got %s", py.Repr(groupText))
	}
	if group.Cmp(big.NewInt(int64(splitGroup))) != 0 {
		return "", fmt.Errorf("submit.py split_group=%d disagrees with pytest --group=%s", splitGroup, group)
	}
	durPath, data, err := readDurations(words, llmSrc, read)
	if err != nil {
		return "", err
	}
	durations, err := parseDurations(data, durPath)
	if err != nil {
		return "", err
	}
	if splits.Sign() <= 0 {
		return "", fmt.Errorf("pytest --splits must be >= 1, got %s", splits)
	}
	if group.Cmp(splits) > 0 {
		return "", fmt.Errorf("pytest --group must be in [1, %s], got %s", splits, group)
	}
	// Only as many groups as there are tests ever receive one (the empty
	// groups with the lowest numbers are filled first), so a larger
	// --splits changes nothing but the group numbers left empty.
	n := len(lines)
	if splits.IsInt64() && splits.Int64() < int64(n) {
		n = int(splits.Int64())
	}
	selected, err := leastDurationGroup(lines, durations, durPath, n, splitGroup)
	if err != nil {
		return "", err
	}
	if len(selected) != 1 {
		return "", fmt.Errorf("Multi-node perf launch requires exactly one test in each pytest-split group, but group %d/%s selected %d tests using %s: %s",
			splitGroup, splits, len(selected), durPath, py.ReprList(selected))
	}
	return selected[0], nil
}

// readDurations finds and reads the pytest-split durations file: the
// --durations-path value when it names a file, else a file of that name
// in the checkout's tests/integration/defs, else .test_durations there.
func readDurations(words []string, llmSrc string, read ReadFunc) (string, []byte, error) {
	const defsDir = "tests/integration/defs"
	p := pyJoin(llmSrc, defsDir, ".test_durations")
	if v, ok := optionValue(words, "--durations-path"); ok && v != "" {
		data, err := read(v)
		if err == nil {
			return v, data, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", nil, fmt.Errorf("pytest-split durations file %s (--durations-path): %w", v, unwrapPathError(err))
		}
		p = pyJoin(llmSrc, defsDir, v[strings.LastIndexByte(v, '/')+1:])
	}
	data, err := read(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil, fmt.Errorf("pytest-split durations file not found: %s", p)
	} else if err != nil {
		return "", nil, fmt.Errorf("pytest-split durations file %s: %w", p, unwrapPathError(err))
	}
	return p, data, nil
}

// durations maps a node id to its recorded duration, kept as the JSON
// number it was written as: only the entries of the tests in the list are
// read, as pytest-split reads only those.
type durations map[string]json.RawMessage

// parseDurations reads pytest-split's durations file: a JSON object from
// node id to seconds, or a list of [id, seconds] pairs (later pairs win).
func parseDurations(data []byte, path string) (durations, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var top json.RawMessage
	if err := dec.Decode(&top); err != nil {
		return nil, fmt.Errorf("pytest-split durations file %s is not valid JSON: %s", path, termtext.OneLine(err.Error()))
	}
	if rest := bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, fmt.Errorf("pytest-split durations file %s is not valid JSON: text after the first value", path)
	}
	invalid := fmt.Errorf("Invalid pytest-split durations file: %s (expected a JSON object of node id to seconds, or a list of [node id, seconds] pairs)", path)
	switch firstByte(top) {
	case '{':
		var m map[string]json.RawMessage
		if err := json.Unmarshal(top, &m); err != nil {
			return nil, invalid
		}
		return m, nil
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(top, &items); err != nil {
			return nil, invalid
		}
		m := durations{}
		for i, it := range items {
			var pair []json.RawMessage
			if firstByte(it) != '[' || json.Unmarshal(it, &pair) != nil || len(pair) != 2 {
				return nil, fmt.Errorf("Invalid pytest-split durations file: %s: item %d is not an [id, seconds] pair: %s", path, i+1, clip(string(it)))
			}
			var id string
			if firstByte(pair[0]) != '"' || json.Unmarshal(pair[0], &id) != nil {
				continue // not a node id: it can match no test
			}
			m[id] = pair[1]
		}
		return m, nil
	}
	return nil, invalid
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// seconds reads the recorded duration of id as a float.
func (d durations) seconds(id, path string) (float64, bool, error) {
	raw, ok := d[id]
	if !ok {
		return 0, false, nil
	}
	var num json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&num); err == nil {
		f, err := strconv.ParseFloat(string(num), 64)
		if err == nil && !math.IsInf(f, 0) {
			return f, true, nil
		}
	}
	return 0, false, fmt.Errorf("Invalid pytest-split durations file: %s: the duration of %s is not a finite number of seconds: %s", path, id, clip(string(raw)))
}

// leastDurationGroup distributes the lines over groups as pytest-split's
// least_duration algorithm does and returns group's lines in list order.
func leastDurationGroup(lines []string, d durations, path string, groups, group int) ([]string, error) {
	type entry struct {
		idx  int
		id   string
		secs float64
	}
	entries := make([]entry, len(lines))
	known := map[string]bool{}
	sum, count := 0.0, 0
	for i, l := range lines {
		id, _ := splitMarker(l)
		entries[i] = entry{idx: i, id: id}
		secs, ok, err := d.seconds(id, path)
		if err != nil {
			return nil, err
		}
		if ok {
			entries[i].secs = secs
			if !known[id] {
				known[id] = true
				sum += secs
				count++
			}
		}
	}
	mean := 1.0
	if count > 0 {
		mean = sum / float64(count)
	}
	for i := range entries {
		if !known[entries[i].id] {
			entries[i].secs = mean
		}
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].id < entries[j].id })
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].secs > entries[j].secs })
	totals := make([]float64, groups)
	var picked []int
	for _, e := range entries {
		best := 0
		for g := 1; g < groups; g++ {
			if totals[g] < totals[best] {
				best = g
			}
		}
		totals[best] += e.secs
		if best == group-1 {
			picked = append(picked, e.idx)
		}
	}
	sort.Ints(picked)
	out := make([]string, len(picked))
	for i, idx := range picked {
		out[i] = lines[idx]
	}
	return out, nil
}

// clip shortens a value quoted in a message.
func clip(s string) string {
	s = termtext.OneLine(s)
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}
