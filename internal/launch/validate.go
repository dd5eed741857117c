package launch

import (
	"fmt"
	"strings"

	"github.com/disagg-runner/disagg-runner/internal/config"
	"github.com/disagg-runner/disagg-runner/internal/shellquote"
)

// The upstream generators paste values into the script unquoted or inside
// double quotes. To stay byte-identical we cannot quote them, so instead we
// refuse values that a shell would turn into a command: command
// substitution, backquotes, and anything that closes the surrounding quotes
// or line. Plain variable references ($name, ${name}) stay allowed because
// real inputs use them (--container-name=job-${SLURM_JOB_ID}).

func (r Request) validate() error {
	if err := checkUnquotedPath(r.name(InputRunScript), r.RunSh); err != nil {
		return err
	}
	if err := checkUnquotedPath(r.name(InputInstallScript), r.InstallSh); err != nil {
		return err
	}
	if r.Profile == V2 || r.Profile == V3 {
		if strings.ContainsAny(r.StageName, "\"$`\\\n\r") {
			return fmt.Errorf("%s %q: must not contain \", $, `, \\ or a line break (it is written inside double quotes)", r.name(InputStageName), r.StageName)
		}
	}
	return nil
}

// checkUnquotedPath accepts paths made of characters that are never special
// to the shell, plus $name / ${name} references.
func checkUnquotedPath(input, p string) error {
	if p == "" {
		return fmt.Errorf("%s is required", input)
	}
	rest := p
	for rest != "" {
		if rest[0] == '$' {
			n := varRefLen(rest)
			if n == 0 {
				return fmt.Errorf("%s %q: only $name or ${name} may follow $", input, p)
			}
			rest = rest[n:]
			continue
		}
		c := rest[0]
		if !shellquote.SafeByte(c) {
			return fmt.Errorf("%s %q: character %q is not allowed in a path written unquoted into launch.sh (expected letters, digits, / . _ + - = , : @ %% and $name)", input, p, c)
		}
		rest = rest[1:]
	}
	return nil
}

// varRefLen is the length of a $name or ${name} reference at the start of
// s, or 0 when s does not start with one.
func varRefLen(s string) int {
	if len(s) < 2 || s[0] != '$' {
		return 0
	}
	if s[1] == '{' {
		end := strings.IndexByte(s, '}')
		if end < 3 || !isName(s[2:end]) {
			return 0
		}
		return end + 1
	}
	n := 1
	for n < len(s) && isNameByte(s[n], n == 1) {
		n++
	}
	if n == 1 {
		return 0
	}
	return n
}

func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isNameByte(s[i], i == 0) {
			return false
		}
	}
	return true
}

func isNameByte(c byte, first bool) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || (!first && c >= '0' && c <= '9')
}

// checkDoubleQuoted accepts a value that will be written between double
// quotes: no quote, backquote, line break, or $ other than $name/${name};
// a backslash only to escape a $ (which defers expansion to the node).
func checkDoubleQuoted(where, v string) error {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '"', '`', '\n', '\r':
			return fmt.Errorf("%s: value %q: character %q is not allowed (it is written inside double quotes in launch.sh)", where, v, c)
		case '\\':
			if i+1 >= len(v) || v[i+1] != '$' {
				return fmt.Errorf("%s: value %q: a backslash may only escape $ (it is written inside double quotes in launch.sh)", where, v)
			}
			i++
		case '$':
			n := varRefLen(v[i:])
			if n == 0 {
				return fmt.Errorf("%s: value %q: only $name or ${name} may follow $ (command substitution and other expansions are refused)", where, v)
			}
			i += n - 1
		}
	}
	return nil
}

func checkEnvStrings(c *config.Config, cfgPath string) error {
	for _, f := range []struct{ field, v string }{
		{"environment.worker_env_var", c.Environment.WorkerEnvVar},
		{"environment.ctx_worker_env_var", c.Environment.CtxWorkerEnvVar},
		{"environment.gen_worker_env_var", c.Environment.GenWorkerEnvVar},
		{"environment.server_env_var", c.Environment.ServerEnvVar},
		{"environment.benchmark_env_var", c.Environment.BenchmarkEnvVar},
	} {
		if err := checkDoubleQuoted(cfgPath+": "+f.field, f.v); err != nil {
			return err
		}
	}
	return nil
}
