package launch

import (
	"errors"
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

// InertVars are the variables whose values may be pasted into text the
// nodes eval: a plain $name in such text is expanded when launch.sh runs,
// and its value is then parsed again as shell by the eval. These hold
// only paths the runner checked (jobWorkspace, llmSrcNode) or numbers
// Slurm sets.
var InertVars = []string{
	"jobWorkspace", "llmSrcNode",
	"SLURM_JOB_ID", "SLURM_JOBID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID",
	"SLURM_NNODES", "SLURM_JOB_NUM_NODES", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID",
}

func isInert(name string) bool {
	for _, v := range InertVars {
		if v == name {
			return true
		}
	}
	return false
}

// CheckEvalBound judges text that launch.sh writes between double quotes
// and the run script later evals on the nodes (the role environments,
// pytestCommand), as launch.sh will have expanded it: a \$ there is a
// plain $ at the eval. What would act at the eval is refused: command
// separators and redirections (; & | < > ( )), any $ other than $name or
// ${name} (command substitution, arithmetic, ${x:=...}, ${!x}, $'...'),
// and plain references to variables whose values are not known to be
// inert (their values become shell text at the eval). \$name is fine:
// the eval expands it and does not parse the result again. The error is
// the reason alone; the caller names the input.
func CheckEvalBound(v string) error {
	const why = "it is eval'ed on the nodes"
	for i := 0; i < len(v); i++ {
		c := v[i]
		escaped := false
		if c == '\\' && i+1 < len(v) && v[i+1] == '$' {
			escaped = true
			i++
			c = '$'
		}
		switch {
		case strings.IndexByte(";&|<>()", c) >= 0:
			return fmt.Errorf("character %q is not allowed (%s, where it would start another command or a redirection)", c, why)
		case c == '$':
			n := varRefLen(v[i:])
			if n == 0 {
				return fmt.Errorf("only $name or ${name} may follow $ (%s; command substitution and other expansions are refused)", why)
			}
			name := strings.Trim(v[i+1:i+n], "{}")
			if !escaped && !isInert(name) {
				return &NotInertError{Name: name}
			}
			i += n - 1
		}
	}
	return nil
}

// NotInertError is a plain reference, in text the nodes eval, to a
// variable whose value is not known to be inert.
type NotInertError struct{ Name string }

func (e *NotInertError) Error() string {
	return fmt.Sprintf("$%s is expanded when launch.sh runs and its value is then eval'ed on the nodes; only $%s may be used there", e.Name, strings.Join(InertVars, ", $"))
}

func checkEnvStrings(c *config.Config, cfgPath string) error {
	for _, f := range []struct{ field, v string }{
		{"environment.worker_env_var", c.Environment.WorkerEnvVar},
		{"environment.ctx_worker_env_var", c.Environment.CtxWorkerEnvVar},
		{"environment.gen_worker_env_var", c.Environment.GenWorkerEnvVar},
		{"environment.server_env_var", c.Environment.ServerEnvVar},
		{"environment.benchmark_env_var", c.Environment.BenchmarkEnvVar},
	} {
		where := cfgPath + ": " + f.field
		if err := checkDoubleQuoted(where, f.v); err != nil {
			return err
		}
		// Upstream passes these through, but the run script evals them.
		if err := CheckEvalBound(f.v); err != nil {
			var ni *NotInertError
			if errors.As(err, &ni) {
				return fmt.Errorf("%s: value %q: %w (\\$%s defers it to the node, where it is safe)", where, f.v, err, ni.Name)
			}
			return fmt.Errorf("%s: value %q: %w", where, f.v, err)
		}
	}
	return nil
}
