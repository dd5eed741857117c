package runner

// The pre-deployment checklist: every item of the original hand-made list
// plus the cluster-side checks, each with the fix for a failure. All items
// are checked even after one fails, so one run shows everything to repair.
// `check` prints it; `run` checks the local half in stage 1 and the cluster
// half in stage 4, once it has connected.

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/disagg-runner/disagg-runner/internal/termtext"
)

// Kind says what a failing item means for a run.
type Kind string

const (
	Prerequisite Kind = "prerequisite" // something is missing
	Input        Kind = "input"        // present but invalid
	Connection   Kind = "connection"   // the cluster cannot be reached
	// Submission items (partition, account, size) are sbatch's to judge: a
	// run leaves the verdict to sbatch (its own message) and only `check`
	// fails on them.
	Submission Kind = "submission"
)

// Item is one checked fact.
type Item struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Kind   Kind   `json:"kind"`
	Detail string `json:"detail,omitempty"` // what was found
	Fix    string `json:"fix,omitempty"`    // for a failure: what to do
}

// Report is the checklist's result.
type Report struct {
	Items []Item `json:"items"`
}

// OK reports whether every item passed.
func (r *Report) OK() bool {
	for _, it := range r.Items {
		if !it.OK {
			return false
		}
	}
	return true
}

// Failed lists the failing items.
func (r *Report) Failed() []Item {
	var f []Item
	for _, it := range r.Items {
		if !it.OK {
			f = append(f, it)
		}
	}
	return f
}

// Add appends an item; a passing item keeps no fix.
func (r *Report) Add(it Item) {
	if it.OK {
		it.Fix = ""
	}
	if it.Kind == "" {
		it.Kind = Prerequisite
	}
	r.Items = append(r.Items, it)
}

// WriteTable prints the ✓/✗ table, a fix under each failure.
func (r *Report) WriteTable(w io.Writer) {
	width := 0
	for _, it := range r.Items {
		width = max(width, utf8.RuneCountInString(termtext.Line(it.Name)))
	}
	for _, it := range r.Items {
		// Details quote inputs: their control bytes are escaped.
		it.Name, it.Detail, it.Fix = termtext.Line(it.Name), termtext.Line(it.Detail), termtext.Line(it.Fix)
		mark := "✓"
		if !it.OK {
			mark = "✗"
		}
		pad := strings.Repeat(" ", width-utf8.RuneCountInString(it.Name))
		fmt.Fprintf(w, "%s %s%s  %s\n", mark, it.Name, pad, it.Detail)
		if !it.OK && it.Fix != "" {
			fmt.Fprintf(w, "  %s  fix: %s\n", strings.Repeat(" ", width), it.Fix)
		}
	}
	failed := len(r.Failed())
	if failed == 0 {
		fmt.Fprintf(w, "all %d checks passed\n", len(r.Items))
	} else {
		fmt.Fprintf(w, "%d of %d checks failed\n", failed, len(r.Items))
	}
}

// WriteJSON prints the report for machines.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		OK    bool   `json:"ok"`
		Items []Item `json:"items"`
	}{r.OK(), r.Items})
}

// CheckFailed is the error of a run stopped by failing checklist items:
// Items are those that block a run (submission items are left to sbatch).
type CheckFailed struct{ Items []Item }

func (e *CheckFailed) Error() string {
	first := e.Items[0]
	more := ""
	if len(e.Items) > 1 {
		more = fmt.Sprintf(" (and %d more failing checks above)", len(e.Items)-1)
	}
	return fmt.Sprintf("%s: %s%s", first.Name, first.Detail, more)
}

// Has reports whether a failing item is of kind k.
func (e *CheckFailed) Has(k Kind) bool {
	for _, it := range e.Items {
		if it.Kind == k {
			return true
		}
	}
	return false
}

// OnlyInputs reports whether every failing item is invalid input (as
// opposed to something missing or out of reach).
func (e *CheckFailed) OnlyInputs() bool {
	for _, it := range e.Items {
		if it.Kind != Input {
			return false
		}
	}
	return true
}

// blocking logs every failing item of r and returns a CheckFailed with
// those that stop a run, or nil.
func blocking(r *Report, con *Console) error {
	var items []Item
	for _, it := range r.Failed() {
		if it.Kind == Submission {
			con.Log.Warn("✗ "+it.Name+": "+it.Detail+" (sbatch will decide)", "fix", it.Fix)
			continue
		}
		con.Log.Error("✗ "+it.Name+": "+it.Detail, "fix", it.Fix)
		items = append(items, it)
	}
	if len(items) == 0 {
		return nil
	}
	return &CheckFailed{Items: items}
}
