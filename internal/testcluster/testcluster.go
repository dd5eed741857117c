// Package testcluster is how tests reach the local Slurm test cluster of
// scripts/testcluster: one place that decides when such a test runs (with
// DISAGG_TESTCLUSTER=1, and then an unreachable cluster is a failure, not
// a skip) and that reads the cluster's settings.
package testcluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

var (
	once sync.Once
	env  map[string]string
	err  error
)

// Env returns the cluster's settings as `scripts/testcluster env` prints
// them (CLUSTER_HOST, CLUSTER_PORT, SLURM_CONF, TESTCLUSTER_SSHD_LOG, ...),
// with SLURM_CONF also set for this process so that Slurm commands run by
// the test find the cluster. Without DISAGG_TESTCLUSTER=1 it skips the test.
func Env(t testing.TB) map[string]string {
	t.Helper()
	if os.Getenv("DISAGG_TESTCLUSTER") != "1" {
		t.Skip("needs the test cluster: run scripts/test, or scripts/testcluster up and DISAGG_TESTCLUSTER=1")
	}
	once.Do(load)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// Script is the path of scripts/testcluster, found from the test's folder
// (the fault tests stop and start its daemons).
func Script(t testing.TB) string {
	t.Helper()
	p, e := script()
	if e != nil {
		t.Fatal(e)
	}
	return p
}

func script() (string, error) {
	dir, e := os.Getwd()
	if e != nil {
		return "", e
	}
	for {
		if _, e := os.Stat(filepath.Join(dir, "go.mod")); e == nil {
			return filepath.Join(dir, "scripts", "testcluster"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the test's folder")
		}
		dir = parent
	}
}

var exportLine = regexp.MustCompile(`^export ([A-Z_]+)='(.*)'$`)

func load() {
	path, e := script()
	if e != nil {
		err = e
		return
	}
	out, e := exec.Command(path, "env").Output()
	if e != nil {
		err = fmt.Errorf("scripts/testcluster env: %v", e)
		return
	}
	env = map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if m := exportLine.FindStringSubmatch(l); m != nil {
			env[m[1]] = strings.ReplaceAll(m[2], `'\''`, `'`)
		}
	}
	os.Setenv("SLURM_CONF", env["SLURM_CONF"])
	if out, e := exec.Command("sinfo", "-h", "-o", "%P %a").CombinedOutput(); e != nil {
		err = fmt.Errorf("the test cluster does not answer (sinfo: %v: %s); start it with scripts/testcluster up", e, out)
	}
}

// SlurmLog is what slurmctld and the slurmds logged about one job (its
// last lines), for a failing test to show why Slurm did what it did: the
// test cluster's logs are gone with the CI machine.
func SlurmLog(env map[string]string, id string) string {
	if id == "" || env["TESTCLUSTER_STATE"] == "" {
		return ""
	}
	mentions := regexp.MustCompile(`JobId=` + regexp.QuoteMeta(id) + `\b|\b[Jj]ob ` + regexp.QuoteMeta(id) + `\b|\[` + regexp.QuoteMeta(id) + `\.|StepId=` + regexp.QuoteMeta(id) + `\.`)
	files, _ := filepath.Glob(filepath.Join(env["TESTCLUSTER_STATE"], "log", "slurm*.log"))
	var b strings.Builder
	for _, f := range files {
		data, e := os.ReadFile(f)
		if e != nil {
			continue
		}
		var hits []string
		for _, line := range strings.Split(string(data), "\n") {
			if mentions.MatchString(line) {
				hits = append(hits, line)
			}
		}
		if len(hits) > 25 {
			hits = hits[len(hits)-25:]
		}
		for _, h := range hits {
			fmt.Fprintf(&b, "%s: %s\n", filepath.Base(f), h)
		}
	}
	if b.Len() == 0 {
		return "(Slurm's logs say nothing about job " + id + ")\n"
	}
	return b.String()
}
