package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/disagg-runner/disagg-runner/runner"
	"github.com/disagg-runner/disagg-runner/sbatch"
)

// runFlags find a run's local folder, for the commands that take a run
// id instead of a job id.
type runFlags struct {
	Workspace string `name:"workspace" env:"WORKSPACE" help:"With a RUNID: the workspace the run was started in (its jobs are recorded under <workspace>/disagg-runner/<run id>/). Default: the current folder." placeholder:"DIR"`
}

func (rf runFlags) workspace(env Env) string {
	if ws := env.abs(rf.Workspace); ws != "" {
		return ws
	}
	return env.Dir
}

// recordedJob is a job a run recorded: one per test for a run of
// several, the one job (test "") for a run of one.
type recordedJob struct {
	test string
	id   sbatch.JobID
}

// jobsOrRun reads the command's argument: a Slurm job id, or a run id
// whose local folder names its jobs.
func jobsOrRun(arg string, env Env, rf runFlags) ([]recordedJob, error) {
	if sbatch.ValidJobID(arg) {
		return []recordedJob{{id: sbatch.JobID(arg)}}, nil
	}
	if runner.CheckRunID(arg) != nil {
		return nil, badInput(fmt.Errorf("JOBID %q: expected a Slurm job id such as 12345 or a run id (the folder name under <workspace>/disagg-runner/)", arg))
	}
	dir := runner.RunDir(rf.workspace(env), arg)
	var jobs []recordedJob
	read := func(test, file string) error {
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		id := strings.TrimSpace(string(b))
		if !sbatch.ValidJobID(id) {
			return badInput(fmt.Errorf("%s: %q is not a Slurm job id", file, id))
		}
		jobs = append(jobs, recordedJob{test: test, id: sbatch.JobID(id)})
		return nil
	}
	if err := read("", filepath.Join(dir, runner.JobIDName)); err == nil {
		return jobs, nil
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	files, _ := filepath.Glob(filepath.Join(dir, "tests", "*", runner.JobIDName))
	sort.Strings(files)
	for _, f := range files {
		if err := read(filepath.Base(filepath.Dir(f)), f); err != nil {
			return nil, err
		}
	}
	if len(jobs) == 0 {
		return nil, badInput(fmt.Errorf("run %s: no job recorded under %s (is --workspace the run's workspace?)", arg, dir))
	}
	return jobs, nil
}
