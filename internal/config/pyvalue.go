package config

import (
	"math"
	"math/big"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/disagg-runner/disagg-runner/internal/lazyre"
	"github.com/disagg-runner/disagg-runner/internal/py"
)

// Kind is the Python type PyYAML would load a value as.
type Kind int

// The kinds of Value.
const (
	KindNull  Kind = iota // None
	KindBool              // bool
	KindInt               // int
	KindFloat             // float
	KindStr               // str
	KindList              // list
	KindMap               // dict
	KindOther             // anything else (an unknown tag, a timestamp)
)

// Value is a YAML value as upstream's Python sees it after PyYAML (YAML
// 1.1) loaded it. perf-sanity-v3 reads some fields the Python way
// (truthiness, int(), repr in messages), which depends on the Python type:
// `off` is False, `0x10` is 16, `1e3` is the string '1e3', `8.0` a float.
type Value struct {
	Kind  Kind
	Text  string   // the scalar as written (unescaped); "" for collections
	Bool  bool     // KindBool
	Int   *big.Int // KindInt
	Float float64  // KindFloat
	Len   int      // KindList, KindMap: number of items
	Line  int
}

// pyValue converts a node the way PyYAML's safe loader resolves and
// constructs it. Only the outer value is converted; collections keep their
// size (all that truthiness needs).
func pyValue(n *yaml.Node) Value {
	n = resolveAlias(n)
	v := Value{Line: n.Line}
	switch n.Kind {
	case yaml.SequenceNode:
		v.Kind, v.Len = KindList, len(n.Content)
		return v
	case yaml.MappingNode:
		v.Kind, v.Len = KindMap, len(n.Content)/2
		return v
	case yaml.ScalarNode:
	default:
		v.Kind = KindOther
		return v
	}
	v.Text = n.Value
	tag := ""
	switch {
	case n.Style&yaml.TaggedStyle != 0:
		tag = n.Tag
	case n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		tag = "!!str"
	default:
		tag = resolvePlain(n.Value)
	}
	switch tag {
	case "!!null":
		v.Kind = KindNull
	case "!!bool":
		v.Kind = KindBool
		switch strings.ToLower(n.Value) {
		case "yes", "true", "on":
			v.Bool = true
		case "no", "false", "off":
		default:
			v.Kind = KindOther
		}
	case "!!int":
		if i, ok := constructInt(n.Value); ok {
			v.Kind, v.Int = KindInt, i
		} else {
			v.Kind = KindOther
		}
	case "!!float":
		if f, ok := constructFloat(n.Value); ok {
			v.Kind, v.Float = KindFloat, f
		} else {
			v.Kind = KindOther
		}
	case "!!str":
		v.Kind = KindStr
	default:
		v.Kind = KindOther
	}
	return v
}

// PyYAML's implicit resolvers for plain scalars (YAML 1.1).
var (
	reBool  = lazyre.New(`^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$`)
	reFloat = lazyre.New(`^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$`)
	reInt   = lazyre.New(`^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$`)
	reNull  = lazyre.New(`^(?:~|null|Null|NULL|)$`)
	// A timestamp is loaded as a date; nothing here reads one as a number.
	reTimestamp = lazyre.New(`^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$`)
)

func resolvePlain(s string) string {
	switch {
	case reBool.MatchString(s):
		return "!!bool"
	case reFloat.MatchString(s):
		return "!!float"
	case reInt.MatchString(s):
		return "!!int"
	case reNull.MatchString(s):
		return "!!null"
	case reTimestamp.MatchString(s):
		return "!!timestamp"
	}
	return "!!str"
}

// constructInt is PyYAML's construct_yaml_int.
func constructInt(s string) (*big.Int, bool) {
	s = strings.ReplaceAll(s, "_", "")
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	var v *big.Int
	ok := false
	switch {
	case s == "0":
		v, ok = new(big.Int), true
	case strings.HasPrefix(s, "0b"):
		v, ok = new(big.Int).SetString(s[2:], 2)
	case strings.HasPrefix(s, "0x"):
		v, ok = new(big.Int).SetString(s[2:], 16)
	case strings.HasPrefix(s, "0"):
		v, ok = new(big.Int).SetString(s[1:], 8)
	case strings.Contains(s, ":"):
		v, ok = new(big.Int), true
		for _, part := range strings.Split(s, ":") {
			d, err := strconv.Atoi(part)
			if err != nil {
				return nil, false
			}
			v.Mul(v, big.NewInt(60)).Add(v, big.NewInt(int64(d)))
		}
	default:
		v, ok = new(big.Int).SetString(s, 10)
	}
	if !ok {
		return nil, false
	}
	if neg {
		v.Neg(v)
	}
	return v, true
}

// constructFloat is PyYAML's construct_yaml_float.
func constructFloat(s string) (float64, bool) {
	s = strings.ToLower(strings.ReplaceAll(s, "_", ""))
	sign := 1.0
	if s != "" && (s[0] == '-' || s[0] == '+') {
		if s[0] == '-' {
			sign = -1
		}
		s = s[1:]
	}
	switch {
	case s == ".inf":
		return sign * math.Inf(1), true
	case s == ".nan":
		return math.NaN(), true
	case strings.Contains(s, ":"):
		v := 0.0
		for _, part := range strings.Split(s, ":") {
			d, err := strconv.ParseFloat(part, 64)
			if err != nil {
				return 0, false
			}
			v = v*60 + d
		}
		return sign * v, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !isRangeErr(err) {
		return 0, false
	}
	return sign * f, true
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// Truthy is Python's bool(value).
func (v Value) Truthy() bool {
	switch v.Kind {
	case KindNull:
		return false
	case KindBool:
		return v.Bool
	case KindInt:
		return v.Int.Sign() != 0
	case KindFloat:
		return v.Float != 0
	case KindStr:
		return v.Text != ""
	case KindList, KindMap:
		return v.Len != 0
	}
	return true
}

// PyInt is Python's int(value): booleans are 0 and 1, floats are truncated
// toward zero, strings are read by py.IntString. ok is false where Python
// raises (None, collections, non-finite floats, strings int() refuses).
func (v Value) PyInt() (*big.Int, bool) {
	switch v.Kind {
	case KindBool:
		if v.Bool {
			return big.NewInt(1), true
		}
		return new(big.Int), true
	case KindInt:
		return new(big.Int).Set(v.Int), true
	case KindFloat:
		if math.IsInf(v.Float, 0) || math.IsNaN(v.Float) {
			return nil, false
		}
		i, _ := big.NewFloat(v.Float).Int(nil)
		return i, true
	case KindStr:
		return py.IntString(v.Text)
	}
	return nil, false
}

// Repr is Python's repr(value) for scalars; collections are described.
func (v Value) Repr() string {
	switch v.Kind {
	case KindNull:
		return "None"
	case KindBool:
		if v.Bool {
			return "True"
		}
		return "False"
	case KindInt:
		return v.Int.String()
	case KindFloat:
		return py.FloatRepr(v.Float)
	case KindStr:
		return py.Repr(v.Text)
	case KindList:
		return "a list"
	case KindMap:
		return "a mapping"
	}
	return py.Repr(v.Text)
}
