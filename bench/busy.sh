#!/usr/bin/env bash
# Runs a command several times in a row on a machine kept busy: two
# CPU-burning processes per core, started first and killed on exit however
# the script ends. A test suite that passes here does not lean on timing.
#
#   bench/busy.sh [-n RUNS] [-b BURNERS_PER_CORE] [COMMAND [ARGS...]]
#
# Defaults: 3 runs of scripts/test, 2 burners per core. The command runs
# from the repository's root, in the foreground (Ctrl-C stops it; a
# SIGTERM to this script takes effect once the current run ends). Each
# run's exit code is reported as it ends, and a summary at the end; the
# script exits 0 when every run passed.
#
#   bench/busy.sh -n 1 go test -count=100 -run 'TestFollowTruncated|TestFollowConnectionLostMidRead' ./sbatch/
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() { sed -n '2,14s/^# \{0,1\}//p' "$0" >&2; exit 2; }

runs=3 per_core=2
while getopts 'n:b:h' opt; do
	case $opt in
	n) runs=$OPTARG ;;
	b) per_core=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[[ $runs =~ ^[1-9][0-9]*$ && $per_core =~ ^[0-9]+$ ]] || usage
(($# > 0)) || set -- scripts/test

say() { printf 'busy: %s\n' "$*" >&2; }

burners=()
stop_burners() {
	((${#burners[@]} > 0)) || return 0
	kill "${burners[@]}" 2>/dev/null || true
	wait "${burners[@]}" 2>/dev/null || true
	say "stopped ${#burners[@]} burners"
	burners=()
}
trap stop_burners EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A burner spins, and now and then checks that this script still runs:
# killed by SIGKILL, it leaves no burner behind either.
# shellcheck disable=SC2016 # expanded by the burner's sh
burn='while kill -0 "$PPID" 2>/dev/null; do i=0; while [ "$i" -lt 20000 ]; do i=$((i + 1)); done; done'
cores=$(nproc)
for ((i = 0; i < cores * per_core; i++)); do
	sh -c "$burn" &
	burners+=("$!")
done
say "${#burners[@]} burners on $cores cores (pids ${burners[*]}); running $runs x: $*"

results=() failed=0
for ((run = 1; run <= runs; run++)); do
	start=$(date +%s)
	if "$@"; then rc=0; else rc=$?; fi
	took=$(($(date +%s) - start))
	verdict=passed
	if ((rc != 0)); then
		verdict=FAILED
		failed=$((failed + 1))
	fi
	results+=("run $run/$runs: $verdict (exit $rc) in ${took}s; load $(cut -d' ' -f1-3 /proc/loadavg)")
	say "${results[-1]}"
done

say "summary ($*):"
for r in "${results[@]}"; do
	say "  $r"
done
say "$((runs - failed)) of $runs runs passed"
((failed == 0))
