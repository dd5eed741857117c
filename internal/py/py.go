// Package py reproduces, byte for byte, the few Python behaviours that
// upstream's generators show their users: how a value is printed (repr),
// how int() reads a string, and which characters are whitespace.
package py

import (
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// IntString is Python's int(s) for a str: surrounding whitespace, an
// optional sign, then decimal digits with single underscores between
// digits. (Python also takes non-ASCII decimal digits; we do not.) The
// whitespace int() skips is Space without the ASCII separators 0x1c-0x1f.
func IntString(s string) (*big.Int, bool) {
	s = strings.TrimFunc(s, func(r rune) bool { return Space(r) && (r < 0x1c || r > 0x1f) })
	body := s
	if body != "" && (body[0] == '+' || body[0] == '-') {
		body = body[1:]
	}
	if body == "" {
		return nil, false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c >= '0' && c <= '9':
		case c == '_' && i > 0 && i+1 < len(body) && body[i-1] != '_' && body[i+1] >= '0' && body[i+1] <= '9':
		default:
			return nil, false
		}
	}
	v, ok := new(big.Int).SetString(strings.ReplaceAll(s, "_", ""), 10)
	return v, ok
}

// Space reports whether r is whitespace for Python's str.split() and
// str.strip() (which includes the ASCII separators 0x1c-0x1f).
func Space(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0x1c, 0x1d, 0x1e, 0x1f, 0x85, 0xa0,
		0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

// FloatRepr is Python's repr of a float: the shortest digits that read
// back, positional for decimal exponents -4..15, else d.ddde+XX.
func FloatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // -d.ddde±XX
	sign := ""
	if e[0] == '-' {
		sign, e = "-", e[1:]
	}
	mant, expText, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expText)
	digits := strings.Replace(mant, ".", "", 1)
	if exp < -4 || exp >= 16 {
		m := digits[:1]
		if len(digits) > 1 {
			m += "." + digits[1:]
		}
		es := "+"
		if exp < 0 {
			es, exp = "-", -exp
		}
		return sign + m + "e" + es + leftPad2(exp)
	}
	var s string
	switch {
	case exp < 0:
		s = "0." + strings.Repeat("0", -exp-1) + digits
	case exp+1 >= len(digits):
		s = digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
	default:
		s = digits[:exp+1] + "." + digits[exp+1:]
	}
	return sign + s
}

func leftPad2(n int) string {
	s := strconv.Itoa(n)
	if len(s) < 2 {
		s = "0" + s
	}
	return s
}

// Repr is Python's repr of a str: single quotes unless the text holds a
// single quote and no double quote; backslash escapes for the quote, the
// backslash, \t \n \r and characters Python does not print.
func Repr(s string) string {
	q := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			// Not UTF-8: Python would have refused the text earlier; show the byte.
			b.WriteString(`\x` + hex2(int(s[i])))
			i++
			continue
		}
		i += size
		switch {
		case r == rune(q) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == ' ' || r < 0x7f && r > 0x20:
			b.WriteRune(r)
		case r < 0x100 && !pyPrintable(r):
			b.WriteString(`\x` + hex2(int(r)))
		case !pyPrintable(r) && r < 0x10000:
			b.WriteString(`\u` + leftPadHex(int(r), 4))
		case !pyPrintable(r):
			b.WriteString(`\U` + leftPadHex(int(r), 8))
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}

// pyPrintable approximates str.isprintable for one character: letters,
// marks, numbers, punctuation and symbols, and the ASCII space.
func pyPrintable(r rune) bool {
	return r == ' ' || unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S)
}

func hex2(n int) string { return leftPadHex(n, 2) }

func leftPadHex(n, width int) string {
	s := strconv.FormatInt(int64(n), 16)
	return strings.Repeat("0", max(0, width-len(s))) + s
}

// ReprList is Python's repr of a list of str: ['a', 'b'], [] when empty.
func ReprList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = Repr(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
