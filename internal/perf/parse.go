package perf

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/disagg-runner/disagg-runner/internal/lazyre"
)

// Header is the line that opens a result block, and Footer the line of 50
// '=' that closes it.
const (
	Header = "============ Serving Benchmark Result ============"
	Footer = "=================================================="
)

// Block is one result block as the client printed it.
type Block struct {
	File string // where it was read, as given to ParseBlocks
	Line int    // 1-based line of its header
	// Values holds every known row (metrics and counts) by key.
	Values map[string]float64
	// Terminated says the closing line was seen.
	Terminated bool
}

// Problem is a place where metrics could not be read. It is reported,
// never fatal.
type Problem struct {
	File string `json:"file"`
	Line int    `json:"line,omitempty"`
	Why  string `json:"why"`
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("metrics unreadable: %s:%d: %s", p.File, p.Line, p.Why)
	}
	return fmt.Sprintf("metrics unreadable: %s: %s", p.File, p.Why)
}

var (
	// The header may follow a prefix that a launcher puts on every line
	// (such as "[1,0]<stdout>:"); the block's other lines then carry it too.
	headerRE = lazyre.New(`^(.*?)=+ Serving Benchmark Result =+$`)
	// A row: a label ending in ':' (left-aligned in 40 columns, or longer),
	// at least one space, and one value (left-aligned in 10 columns).
	rowRE = lazyre.New(`^(\S[^:]*:)\s+(\S+)$`)
)

// maxBlockLines bounds a block that never closes: past it the block is
// taken as cut off, so that one lost footer cannot swallow a whole log.
const maxBlockLines = 200

// ParseBlocks reads every result block in data. name is used only in
// blocks and problems. It never fails: whatever cannot be read is a
// Problem, and the rows that could be read are kept.
func ParseBlocks(name string, data []byte) ([]Block, []Problem) {
	return ParseBlocksFrom(name, bytes.NewReader(data))
}

// headerMark is in every header line headerRE matches.
var headerMark = []byte(" Serving Benchmark Result ")

// ParseBlocksFrom is ParseBlocks reading r a line at a time.
func ParseBlocksFrom(name string, r io.Reader) ([]Block, []Problem) {
	p := blockParser{name: name}
	n, err := eachLine(r, p.line)
	if err != nil {
		p.problems = append(p.problems, Problem{File: name, Line: n, Why: "read: " + err.Error()})
	}
	return p.end()
}

// blockParser reads result blocks from the lines of one file, given one
// at a time in order.
type blockParser struct {
	name     string
	blocks   []Block
	problems []Problem
	cur      *Block // the block open now
	prefix   string // what the open block's header had before its '='
	seen     map[string]int
}

func (p *blockParser) problem(line int, format string, a ...any) {
	p.problems = append(p.problems, Problem{File: p.name, Line: line, Why: fmt.Sprintf(format, a...)})
}

func (p *blockParser) closeBlock(terminated bool) {
	p.cur.Terminated = terminated
	p.blocks = append(p.blocks, *p.cur)
	p.cur = nil
}

// line takes line n. Outside a block only a header matters: the cheap test
// first, since a job log is mostly other lines.
func (p *blockParser) line(n int, raw []byte) {
	if p.cur != nil || bytes.Contains(raw, headerMark) {
		p.take(n, strings.TrimRight(string(raw), " \t\r"))
	}
}

func (p *blockParser) take(n int, line string) {
	if m := headerRE.FindStringSubmatch(line); m != nil {
		if p.cur != nil {
			p.problem(p.cur.Line, "result block has no closing line of 50 '=' before the next block (line %d)", n)
			p.closeBlock(false)
		}
		p.cur = &Block{File: p.name, Line: n, Values: map[string]float64{}}
		p.prefix, p.seen = m[1], map[string]int{}
		return
	}
	if p.cur == nil {
		return
	}
	if n-p.cur.Line > maxBlockLines {
		p.problem(p.cur.Line, "result block has no closing line of 50 '=' within %d lines", maxBlockLines)
		p.closeBlock(false)
		return
	}
	line = strings.TrimLeft(strings.TrimPrefix(line, p.prefix), " \t")
	switch {
	case line == Footer:
		p.closeBlock(true)
		return
	case line == "", strings.HasPrefix(line, "-"), strings.HasPrefix(line, "="):
		// Blank lines, section separators ("-----Time to First
		// Token-----") and the client's own banners
		// ("===!FAILED REQUESTS!===").
		return
	}
	m := rowRE.FindStringSubmatch(line)
	if m == nil {
		return // a line of something else that ran at the same time
	}
	key, known := keyByLabel[m[1]]
	if !known {
		return // a row this runner does not use (goodput, energy, min, max, P50, ...)
	}
	v, err := strconv.ParseFloat(m[2], 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		p.problem(n, "%s %q is not a number", strings.TrimSuffix(m[1], ":"), m[2])
		return
	}
	if first, dup := p.seen[key]; dup {
		p.problem(n, "%s printed twice in one block (first on line %d); the first is kept", strings.TrimSuffix(m[1], ":"), first)
		return
	}
	p.seen[key] = n
	p.cur.Values[key] = v
}

// end closes a block the file left open and returns what was read.
func (p *blockParser) end() ([]Block, []Problem) {
	if p.cur != nil {
		p.problem(p.cur.Line, "result block is cut off: the log ends before its closing line of 50 '='")
		p.closeBlock(false)
	}
	return p.blocks, p.problems
}

// Failed is the number of failed requests: the row when there is one,
// else total minus successful when the client prints both, else 0.
func (b Block) Failed() float64 {
	if v, ok := b.Values["failed_requests"]; ok {
		return v
	}
	t, ok1 := b.Values["total_requests"]
	s, ok2 := b.Values["successful_requests"]
	if ok1 && ok2 && t > s {
		return t - s
	}
	return 0
}

// Missing lists the core metrics the block lacks, in catalogue order.
func (b Block) Missing() []string {
	var out []string
	for _, k := range CoreKeys() {
		if _, ok := b.Values[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

// Incomplete says why the block's numbers cannot be trusted as a whole:
// failed requests, missing core metrics, or no closing line. Empty when
// the block is complete.
func (b Block) Incomplete() []string {
	var why []string
	if f := b.Failed(); f > 0 {
		why = append(why, fmt.Sprintf("%s failed requests", formatCount(f)))
	}
	if m := b.Missing(); len(m) > 0 {
		why = append(why, "missing "+strings.Join(m, ", "))
	}
	if !b.Terminated {
		why = append(why, "cut off")
	}
	return why
}

// Concurrency is the block's "Maximum request concurrency:" (0 when absent).
func (b Block) Concurrency() int {
	v, ok := b.Values["max_concurrency"]
	if !ok || v < 1 || v > math.MaxInt32 || v != math.Trunc(v) {
		return 0
	}
	return int(v)
}

func formatCount(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// FormatBlock prints values the way the benchmark client does: the header,
// rows "{:<40} {:<10}" (counts as integers, everything else with two
// decimals), section separators, and the closing line. It is the layout
// the stand-in benchmark copies; tests use it to make realistic logs.
// Rows are printed only for the keys present in values.
func FormatBlock(values map[string]float64) string {
	var b strings.Builder
	b.WriteString(Header + "\n")
	row := func(label string, v float64, integer bool) {
		s := strconv.FormatFloat(v, 'f', 2, 64)
		if integer {
			s = formatCount(v)
		}
		fmt.Fprintf(&b, "%-40s %-10s\n", label, s)
	}
	for _, k := range []string{"total_requests", "successful_requests", "failed_requests", "max_concurrency"} {
		if v, ok := values[k]; ok {
			row(Counts[countIndex(k)].Labels[0], v, true)
		}
	}
	if v, ok := values["duration_s"]; ok {
		row("Benchmark duration (s):", v, false)
	}
	for _, k := range []string{"total_input_tokens", "total_output_tokens"} {
		if v, ok := values[k]; ok {
			row(Counts[countIndex(k)].Labels[0], v, true)
		}
	}
	for _, k := range []string{"request_throughput", "output_throughput", "total_token_throughput", "user_throughput"} {
		if v, ok := values[k]; ok {
			row(metricByKey[k].Labels[0], v, false)
		}
	}
	section := func(title string) { fmt.Fprintf(&b, "%s\n", center(title, 50, '-')) }
	if v, ok := values["decoded_tokens_per_iter"]; ok {
		section("Avg Decoded Tokens per Iter")
		row(metricByKey["decoded_tokens_per_iter"].Labels[0], v, false)
	}
	for _, g := range []struct{ key, title string }{
		{"ttft", "Time to First Token"}, {"tpot", "Time per Output Token (excl. 1st token)"},
		{"itl", "Inter-token Latency"}, {"e2el", "End-to-end Latency"},
	} {
		printed := false
		for _, stat := range []string{"mean", "median", "std", "p99"} {
			if v, ok := values[g.key+"_"+stat]; ok {
				if !printed {
					section(g.title)
					printed = true
				}
				row(metricByKey[g.key+"_"+stat].Labels[0], v, false)
			}
		}
	}
	if v, ok := values["device_step_time"]; ok {
		row(metricByKey["device_step_time"].Labels[0], v, false)
	}
	b.WriteString(Footer + "\n")
	return b.String()
}

func countIndex(key string) int {
	for i, c := range Counts {
		if c.Key == key {
			return i
		}
	}
	panic("unknown count " + key)
}

// center is Python's "{s:{c}^{n}}".format(...): extra fill goes right.
func center(s string, width int, fill rune) string {
	pad := width - len(s)
	if pad <= 0 {
		return s
	}
	left := pad / 2
	return strings.Repeat(string(fill), left) + s + strings.Repeat(string(fill), pad-left)
}
