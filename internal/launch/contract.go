package launch

import (
	"fmt"
	"sort"
	"strings"
)

// MissingVar is a variable the draft expands that nothing defines.
type MissingVar struct {
	Name string
	Line int // 1-based line in the draft file as read
}

func (m MissingVar) String() string { return fmt.Sprintf("line %d: $%s", m.Line, m.Name) }

// ContractInput is what the contract check compares.
type ContractInput struct {
	Draft     []byte   // the draft as read
	DraftPath string   // for messages
	Defined   [][]byte // texts whose definitions count (prefix, srunArgs, gate)
}

// CheckContract lists, in line order, every variable the draft expands
// without a default that is neither defined by the generated prefix, the
// gate library or the draft itself, nor provided at run time by Slurm or
// bash. A draft from one generator era paired with the other profile is
// the failure this exists to catch.
func CheckContract(in ContractInput) []MissingVar {
	defined := map[string]bool{}
	for _, t := range in.Defined {
		collectDefinitions(string(t), defined)
	}
	collectDefinitions(string(in.Draft), defined)

	var missing []MissingVar
	seen := map[string]bool{}
	for _, u := range scanExpansions(string(in.Draft)) {
		if u.hasDefault || defined[u.name] || isRuntimeVar(u.name) || seen[u.name] {
			continue
		}
		seen[u.name] = true
		missing = append(missing, MissingVar{Name: u.name, Line: u.line})
	}
	sort.SliceStable(missing, func(i, j int) bool { return missing[i].Line < missing[j].Line })
	return missing
}

// FormatMissing renders the check's findings as one line.
func FormatMissing(draftPath string, p Profile, missing []MissingVar) string {
	parts := make([]string, len(missing))
	for i, m := range missing {
		parts[i] = fmt.Sprintf("$%s (line %d)", m.Name, m.Line)
	}
	return fmt.Sprintf("%s: the draft uses variables that the %s profile does not define: %s (is the draft from another generator era? choose its profile with --profile)", draftPath, p, strings.Join(parts, ", "))
}

var runtimeVars = map[string]bool{
	// bash's own
	"BASH": true, "BASHPID": true, "BASH_ARGC": true, "BASH_ARGV": true, "BASH_COMMAND": true,
	"BASH_LINENO": true, "BASH_REMATCH": true, "BASH_SOURCE": true, "BASH_SUBSHELL": true,
	"BASH_VERSION": true, "BASH_VERSINFO": true, "COLUMNS": true, "DIRSTACK": true,
	"EPOCHREALTIME": true, "EPOCHSECONDS": true, "EUID": true, "FUNCNAME": true, "GROUPS": true,
	"HISTCMD": true, "HOSTNAME": true, "HOSTTYPE": true, "IFS": true, "LINENO": true,
	"MACHTYPE": true, "OLDPWD": true, "OPTARG": true, "OPTIND": true, "OSTYPE": true,
	"PIPESTATUS": true, "PPID": true, "PWD": true, "RANDOM": true, "REPLY": true,
	"SECONDS": true, "SHELLOPTS": true, "SHLVL": true, "SRANDOM": true, "UID": true,
	// the process environment every job has
	"HOME": true, "PATH": true, "USER": true, "LOGNAME": true, "SHELL": true, "TMPDIR": true,
	"LANG": true, "TERM": true,
	// set by srun/Slurm's GRES plugin in each task
	"CUDA_VISIBLE_DEVICES": true, "GPU_DEVICE_ORDINAL": true,
}

func isRuntimeVar(name string) bool {
	if runtimeVars[name] {
		return true
	}
	for _, p := range []string{"SLURM_", "SLURMD_", "SBATCH_", "SRUN_", "PMIX_", "PMI_", "OMPI_", "LC_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// declarationWords assign to (or declare) the names that follow them in
// the same command.
var declarationWords = map[string]bool{
	"export": true, "local": true, "declare": true, "typeset": true, "readonly": true,
	"read": true, "mapfile": true, "readarray": true, "getopts": true, "unset": true,
}

// collectDefinitions adds every name text assigns or declares. It
// over-approximates on purpose: calling a defined name missing would block
// a good draft, while the check exists to catch the names nothing defines.
// A hand-written scanner, because the regular expressions it replaces made
// this the slowest part of generation by far.
func collectDefinitions(text string, defined map[string]bool) {
	words := splitWords(text)
	inDecl := false
	for i, w := range words {
		if w.commandEnd {
			inDecl = false
			continue
		}
		name, rest := leadingName(w.text)
		switch {
		case name != "" && isAssignmentTail(rest):
			defined[name] = true
		case name != "" && rest == "" && i+1 < len(words) && !words[i+1].commandEnd && isArithAssign(words[i+1].text):
			defined[name] = true
		case inDecl && name != "" && rest == "":
			defined[name] = true
		case w.text == "for" && i+1 < len(words):
			if n, r := leadingName(words[i+1].text); r == "" && n != "" {
				defined[n] = true
			}
		case w.text == "-v" && i > 0 && words[i-1].text == "printf" && i+1 < len(words):
			if n, r := leadingName(words[i+1].text); r == "" && n != "" {
				defined[n] = true
			}
		}
		if declarationWords[w.text] {
			inDecl = true
		}
	}
}

// isAssignmentTail reports whether what follows a name makes the word an
// assignment: =, +=, [index]=, or the ++/-- of arithmetic.
func isAssignmentTail(rest string) bool {
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return false
		}
		rest = rest[end+1:]
	}
	return strings.HasPrefix(rest, "=") && !strings.HasPrefix(rest, "==") ||
		strings.HasPrefix(rest, "+=") || rest == "++" || rest == "--"
}

func isArithAssign(w string) bool {
	for _, op := range []string{"=", "+=", "-=", "*=", "/=", "%=", "++", "--"} {
		if strings.HasPrefix(w, op) && !strings.HasPrefix(w, "==") {
			return true
		}
	}
	return false
}

func leadingName(w string) (name, rest string) {
	n := 0
	for n < len(w) && isNameByte(w[n], n == 0) {
		n++
	}
	return w[:n], w[n:]
}

type word struct {
	text       string
	commandEnd bool // a separator that ends a simple command
}

// splitWords splits shell text into words at unquoted blanks and
// operators, keeping quoted spans inside their word, and marks where
// simple commands end.
func splitWords(s string) []word {
	var out []word
	start := -1
	flush := func(end int) {
		if start >= 0 {
			out = append(out, word{text: s[start:end]})
			start = -1
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case ' ', '\t', '<', '>':
			flush(i)
		case '\n', ';', '&', '|', '(', ')', '{', '}':
			flush(i)
			out = append(out, word{commandEnd: true})
		case '\'', '"':
			if start < 0 {
				start = i
			}
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 {
				i = len(s) - 1
			} else {
				i += end + 1
			}
		case '\\':
			if start < 0 {
				start = i
			}
			i++
		case '#':
			if start < 0 {
				flush(i)
				for i+1 < len(s) && s[i+1] != '\n' {
					i++
				}
				continue
			}
		default:
			if start < 0 {
				start = i
			}
		}
	}
	flush(len(s))
	return out
}

type expansion struct {
	name       string
	line       int
	hasDefault bool
}

// frame is one level of bash quoting context.
type frame struct {
	double bool // inside "..."
	parens int  // open ( inside a $( ... ) or `...` frame
	tick   bool // a `...` command substitution
}

// scanExpansions finds $name and ${name...} expansions that bash would
// perform, skipping single-quoted text, $'...' strings, comments, escaped
// dollars and quoted here-documents.
func scanExpansions(s string) []expansion {
	var out []expansion
	line := 1
	stack := []frame{{}}
	var heredocs []heredoc
	for i := 0; i < len(s); i++ {
		c := s[i]
		top := &stack[len(stack)-1]
		switch {
		case c == '\n':
			line++
			pos := i + 1
			for _, h := range heredocs {
				var body []expansion
				pos, line, body = consumeHeredoc(s, pos, line, h)
				out = append(out, body...)
			}
			heredocs = nil
			i = pos - 1
		case c == '\\':
			if i+1 < len(s) && s[i+1] == '\n' {
				line++
			}
			i++
		case c == '$':
			if i+1 < len(s) && s[i+1] == '(' {
				stack = append(stack, frame{})
				i++
				continue
			}
			if i+1 < len(s) && s[i+1] == '\'' && !top.double {
				i = skipANSIC(s, i+2, &line)
				continue
			}
			if e, n := parseExpansion(s[i:]); n > 0 {
				e.line = line
				out = append(out, e)
				if e.hasDefault {
					// The default word may itself expand variables; those
					// are checked as usual by scanning on from the operator.
					i += len("${") + len(e.name)
				} else {
					i += n - 1
				}
			}
		case top.double:
			if c == '"' {
				stack = stack[:len(stack)-1]
			} else if c == '`' {
				stack = append(stack, frame{tick: true})
			}
		case c == '"':
			stack = append(stack, frame{double: true})
		case c == '\'':
			for i++; i < len(s) && s[i] != '\''; i++ {
				if s[i] == '\n' {
					line++
				}
			}
		case c == '`':
			if top.tick && len(stack) > 1 {
				stack = stack[:len(stack)-1]
			} else {
				stack = append(stack, frame{tick: true})
			}
		case c == '(':
			top.parens++
		case c == ')':
			if top.parens > 0 {
				top.parens--
			} else if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
		case c == '#' && (i == 0 || strings.IndexByte(" \t\n;&|()", s[i-1]) >= 0):
			for i+1 < len(s) && s[i+1] != '\n' {
				i++
			}
		case c == '<' && strings.HasPrefix(s[i:], "<<") && !strings.HasPrefix(s[i:], "<<<") && (i == 0 || s[i-1] != '<'):
			h, n := parseHeredocStart(s[i+2:])
			if n > 0 {
				heredocs = append(heredocs, h)
				i += 1 + n
			}
		}
	}
	return out
}

// parseExpansion reads $name or ${...} at the start of s. It returns the
// expansion and its length, or n == 0 for specials ($1, $@, $?, ${!x}, ...).
func parseExpansion(s string) (expansion, int) {
	if len(s) < 2 {
		return expansion{}, 0
	}
	if s[1] != '{' {
		n := 1
		for n < len(s) && isNameByte(s[n], n == 1) {
			n++
		}
		if n == 1 {
			return expansion{}, 0
		}
		return expansion{name: s[1:n]}, n
	}
	j := 2
	if j < len(s) && s[j] == '#' { // ${#name}: the length still needs name
		j++
	}
	start := j
	for j < len(s) && isNameByte(s[j], j == start) {
		j++
	}
	if j == start {
		return expansion{}, 0
	}
	e := expansion{name: s[start:j]}
	if j < len(s) && s[j] == '[' { // ${name[@]}, ${name[i]}
		if k := strings.IndexByte(s[j:], ']'); k > 0 {
			j += k + 1
		}
	}
	rest := s[j:]
	for _, op := range []string{":-", ":=", ":+", ":?", "-", "=", "+", "?"} {
		if strings.HasPrefix(rest, op) {
			// ${x:?msg} and ${x?msg} fail loudly when x is unset: that is
			// the draft's own check, not a silent use, so it counts as
			// handled too.
			e.hasDefault = true
			break
		}
	}
	end := strings.IndexByte(s, '}')
	if end < 0 {
		return e, len(s)
	}
	return e, end + 1
}

func skipANSIC(s string, i int, line *int) int {
	for ; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '\n':
			*line++
		case '\'':
			return i
		}
	}
	return i
}

type heredoc struct {
	delim     string
	quoted    bool
	stripTabs bool
}

// parseHeredocStart reads the delimiter after "<<" and returns how many
// bytes it spans.
func parseHeredocStart(s string) (heredoc, int) {
	var h heredoc
	n := 0
	if n < len(s) && s[n] == '-' {
		h.stripTabs = true
		n++
	}
	for n < len(s) && (s[n] == ' ' || s[n] == '\t') {
		n++
	}
	var word strings.Builder
	for n < len(s) && strings.IndexByte(" \t\n;&|<>()", s[n]) < 0 {
		switch s[n] {
		case '\'', '"', '\\':
			h.quoted = true
		default:
			word.WriteByte(s[n])
		}
		n++
	}
	h.delim = word.String()
	if h.delim == "" {
		return heredoc{}, 0
	}
	return h, n
}

// consumeHeredoc skips a here-document body starting at i, returning the
// index of the byte after its terminating line, the line number there, and
// the expansions an unquoted body performs.
func consumeHeredoc(s string, i, line int, h heredoc) (int, int, []expansion) {
	var out []expansion
	for i < len(s) {
		end := strings.IndexByte(s[i:], '\n')
		var text string
		if end < 0 {
			text, end = s[i:], len(s)-i
		} else {
			text = s[i : i+end]
		}
		check := text
		if h.stripTabs {
			check = strings.TrimLeft(check, "\t")
		}
		if check == h.delim {
			return i + end + 1, line + 1, out
		}
		if !h.quoted {
			for k := 0; k < len(text); k++ {
				if text[k] == '\\' {
					k++
					continue
				}
				if text[k] == '$' {
					if e, n := parseExpansion(text[k:]); n > 0 {
						e.line = line
						out = append(out, e)
						k += n - 1
					}
				}
			}
		}
		i += end + 1
		line++
	}
	return i, line, out
}
