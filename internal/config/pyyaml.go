package config

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/disagg-runner/disagg-runner/internal/lazyre"
)

// The configs are written for PyYAML's safe loader (YAML 1.1), which is
// what upstream's generators load them with. go.yaml.in/yaml/v3 parses
// YAML 1.2 and knows nothing of the safe loader's limits, so the parsed
// tree is brought in line here before anything is read from it: what
// PyYAML refuses is refused (prepare), merge keys are flattened as
// PyYAML's flatten_mapping does, and scalars are typed as PyYAML types
// them (pyValue).

// safeTags are the tags PyYAML's SafeConstructor has constructors for,
// by the kind of node they may stand on.
var safeTags = map[yaml.Kind]map[string]bool{
	yaml.ScalarNode:   {"!!null": true, "!!bool": true, "!!int": true, "!!float": true, "!!binary": true, "!!timestamp": true, "!!str": true},
	yaml.SequenceNode: {"!!seq": true, "!!omap": true, "!!pairs": true},
	yaml.MappingNode:  {"!!map": true, "!!set": true},
}

// prepare checks n and everything below it the way PyYAML's safe loader
// would construct it, and flattens merge keys; field names n in errors.
func (p *parser) prepare(n *yaml.Node, field string) error {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := p.prepare(c, field); err != nil {
				return err
			}
		}
		return nil
	case yaml.AliasNode:
		return nil // checked where its anchor is
	}
	if n.Style&yaml.TaggedStyle != 0 && !safeTags[n.Kind][n.Tag] {
		return p.problem(field, n, fmt.Sprintf("PyYAML's safe loader has no constructor for the tag %q", n.Tag))
	}
	switch n.Kind {
	case yaml.ScalarNode:
		return p.checkScalar(n, field)
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := p.prepare(c, fmt.Sprintf("%s[%d]", field, i)); err != nil {
				return err
			}
		}
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if rk := resolveAlias(k); rk != nil && (rk.Kind == yaml.MappingNode || rk.Kind == yaml.SequenceNode) {
			return p.problem(field, k, fmt.Sprintf("%s cannot be a mapping key (PyYAML: found unhashable key)", describe(rk)))
		}
		if err := p.prepare(k, field); err != nil {
			return err
		}
		if err := p.prepare(v, join(field, k.Value)); err != nil {
			return err
		}
	}
	return p.flatten(n, field)
}

func join(field, key string) string {
	if field == "" || field == "(document)" {
		return key
	}
	return field + "." + key
}

// problem is an error at n that is not about an expected type.
func (p *parser) problem(field string, n *yaml.Node, msg string) error {
	if field == "" {
		field = "(document)"
	}
	return fmt.Errorf("%s:%d: %s: %s", p.path, n.Line, field, msg)
}

// checkScalar refuses what PyYAML cannot construct: an explicitly tagged
// value its constructor rejects, an impossible date.
func (p *parser) checkScalar(n *yaml.Node, field string) error {
	tag := n.Tag
	if n.Style&yaml.TaggedStyle == 0 {
		if n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			return nil
		}
		tag = resolvePlain(n.Value)
	}
	ok := true
	switch tag {
	case "!!int":
		_, ok = constructInt(n.Value)
	case "!!float":
		_, ok = constructFloat(n.Value)
	case "!!bool":
		switch strings.ToLower(n.Value) {
		case "yes", "no", "true", "false", "on", "off":
		default:
			ok = false
		}
	case "!!binary":
		_, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(n.Value), ""))
		ok = err == nil
	case "!!timestamp":
		if !validTimestamp(n.Value) {
			return p.problem(field, n, fmt.Sprintf("%q is not a valid date (PyYAML cannot construct it)", n.Value))
		}
	}
	if !ok {
		return p.problem(field, n, fmt.Sprintf("%q is not a valid %s (PyYAML cannot construct it)", n.Value, tag))
	}
	return nil
}

// reTimestampParts is PyYAML's timestamp constructor's pattern.
var reTimestampParts = lazyre.New(`^([0-9][0-9][0-9][0-9])-([0-9][0-9]?)-([0-9][0-9]?)(?:(?:[Tt]|[ \t]+)([0-9][0-9]?):([0-9][0-9]):([0-9][0-9])(?:\.[0-9]*)?(?:[ \t]*(Z|([-+])([0-9][0-9]?)(?::([0-9][0-9]))?))?)?$`)

// validTimestamp says whether Python's datetime takes the date and time.
func validTimestamp(s string) bool {
	m := reTimestampParts.FindStringSubmatch(s)
	if m == nil {
		return false
	}
	num := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	year, month, day := num(1), num(2), num(3)
	if year < 1 || month < 1 || month > 12 || day < 1 || day > time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day() {
		return false
	}
	if m[4] != "" && (num(4) > 23 || num(5) > 59 || num(6) > 59) {
		return false
	}
	if m[8] != "" && num(9)*60+num(10) >= 24*60 {
		return false
	}
	return true
}

// maxMergeDepth bounds chains of merge keys.
const maxMergeDepth = 64

// flatten rewrites a mapping as PyYAML's flatten_mapping leaves it: the
// pairs of the mappings its merge keys (<<) name first (of a list of
// them, the earlier mapping winning), then its own pairs, later pairs
// winning over earlier ones with the same key. Each mapping is flattened
// once (aliases share it) and keeps one pair per key, so merges cannot
// multiply into an exponential tree.
func (p *parser) flatten(n *yaml.Node, field string) error {
	if p.flat == nil {
		p.flat = map[*yaml.Node]bool{}
	}
	if p.flat[n] {
		return nil
	}
	if p.depth >= maxMergeDepth {
		return p.problem(field, n, "merge keys (<<) nested too deeply or refer to their own mapping")
	}
	p.depth++
	defer func() { p.depth-- }()
	var merged, own []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !isMergeKey(k) {
			own = append(own, k, v)
			continue
		}
		rv := resolveAlias(v)
		var sources []*yaml.Node
		switch {
		case rv != nil && rv.Kind == yaml.MappingNode:
			sources = []*yaml.Node{rv}
		case rv != nil && rv.Kind == yaml.SequenceNode:
			for j := len(rv.Content) - 1; j >= 0; j-- { // the earlier wins: it comes later
				s := resolveAlias(rv.Content[j])
				if s == nil || s.Kind != yaml.MappingNode {
					return p.problem(field, k, "a merge key (<<) needs a mapping or a list of mappings (PyYAML refuses anything else)")
				}
				sources = append(sources, s)
			}
		default:
			return p.problem(field, k, "a merge key (<<) needs a mapping or a list of mappings (PyYAML refuses anything else)")
		}
		for _, s := range sources {
			if err := p.flatten(s, field); err != nil {
				return err
			}
			merged = append(merged, s.Content...)
		}
	}
	n.Content = lastPerKey(append(merged, own...))
	p.flat[n] = true
	return nil
}

// isMergeKey is a plain << (a quoted one is an ordinary key).
func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Tag == "!!merge" && k.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) == 0
}

// lastPerKey keeps, of pairs with the same key, the last one (in the
// place of the first, which is where a Python dict keeps it).
func lastPerKey(pairs []*yaml.Node) []*yaml.Node {
	index := map[string]int{}
	var out []*yaml.Node
	for i := 0; i+1 < len(pairs); i += 2 {
		k := resolveAlias(pairs[i])
		id := keyID(k)
		if j, ok := index[id]; ok && id != "" {
			out[j+1] = pairs[i+1]
			continue
		}
		index[id] = len(out)
		out = append(out, pairs[i], pairs[i+1])
	}
	return out
}

// keyID identifies a scalar key by its PyYAML type and text ("" for
// anything else, which is never merged with another key).
func keyID(k *yaml.Node) string {
	if k == nil || k.Kind != yaml.ScalarNode {
		return ""
	}
	v := pyValue(k)
	return strconv.Itoa(int(v.Kind)) + "\x00" + v.Text
}
