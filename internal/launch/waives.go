package launch

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// WaivesPath is the checkout's list of waived tests, relative to its root.
const WaivesPath = "tests/integration/test_lists/waives.txt"

// skippedByWaiver reports whether the selected test-list line is waived
// with SKIP: by a marker on its own line (before any '#'), or by a SKIP
// line of the checkout's waives.txt naming the same node id. testPrefix is
// the pytest line's --test-prefix; it lets `full:<scope>/<id>` entries
// count on the platforms their scope names.
func skippedByWaiver(line, testPrefix, llmSrc string, read ReadFunc) (bool, error) {
	own, _, _ := strings.Cut(line, "#")
	if _, m := splitMarker(own); m == "SKIP" {
		return true, nil
	}
	p := pyJoin(llmSrc, WaivesPath)
	data, err := read(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("reading the waives file %s: %w", p, unwrapPathError(err))
	}
	return waived(string(data), line, testPrefix), nil
}

// waived reports whether the waives file text waives line with SKIP.
func waived(waives, line, testPrefix string) bool {
	id, _ := splitMarker(line)
	for _, w := range runnableLines(waives) {
		wid, m := splitMarker(w)
		if m == "SKIP" && waiveMatches(pyStrip(wid), id, testPrefix) {
			return true
		}
	}
	return false
}

// waiveMatches compares a waive entry's id with a node id. An entry
// `full:<scope>/<id>` is scoped to platforms: it counts only with a
// --test-prefix whose text before its first '-' occurs in the scope, and
// never for an "sm..." scope.
func waiveMatches(entry, id, testPrefix string) bool {
	rest, full := strings.CutPrefix(entry, "full:")
	if !full {
		return entry == id
	}
	scope, wid, ok := strings.Cut(rest, "/")
	if !ok || testPrefix == "" || strings.HasPrefix(scope, "sm") {
		return false
	}
	platform, _, _ := strings.Cut(testPrefix, "-")
	return strings.Contains(scope, platform) && wid == id
}
