# Stand-in checkout: the precheck command names this file, but
# jenkins/scripts/perf/disaggregated/slurm_precheck_run.sh routes it to the
# bash stand-in (standin/bin/ct-precheck). Reaching real Python means the
# precheck ran outside that script, which would prove nothing.
raise SystemExit("stand-in run_precheck.py: run it through slurm_precheck_run.sh")
