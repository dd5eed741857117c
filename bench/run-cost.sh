#!/usr/bin/env bash
# Measures what following a job costs and how fast its end is noticed, on
# the local test cluster, through the real binary over SSH:
#   - lag between Slurm's end time and the moment the runner noticed it
#     (median over the runs),
#   - slurmctld RPCs of the kinds a follower issues (job-info queries), per
#     minute of the run, from sdiag before and after,
#   - SSH connections one run opened, from the login node's sshd log.
#
#   bench/run-cost.sh [RUNS] [JOB_SECONDS]      (defaults: 5 runs of 60 s)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${1:-5}
seconds=${2:-60}

CGO_ENABLED=0 go build -buildvcs=auto -o bin/disagg-runner .
scripts/testcluster up >/dev/null
eval "$(scripts/testcluster env)"

work=$(mktemp -d /var/tmp/disagg-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -a testdata/trtllm-v1 "$work/trtllm"
echo "STANDIN_SLEEP=$seconds" >"$work/trtllm/standin.env"
mkdir -p "$work/ws" "$work/jobs" "$work/models"

# The job-info queries a follower makes (scontrol show job = FED_INFO +
# JOB_INFO_SINGLE; squeue = JOB_INFO or JOB_USER_INFO). Nothing else on
# the test cluster issues them during a bench run.
rpcs() {
	sdiag | awk '/by message type/{on=1} /by user/{on=0}
		on && /^\s*REQUEST_(FED_INFO|JOB_INFO_SINGLE|JOB_INFO|JOB_USER_INFO) / {
			for (i = 1; i <= NF; i++) if ($i ~ /^count:/) { sub("count:", "", $i); n += $i } }
		END { print n + 0 }'
}
connections() { grep -c "Accepted publickey" "$TESTCLUSTER_SSHD_LOG" || true; }

lags=()
printf '%-4s %-10s %-8s %-10s %-8s %-6s\n' run exit wall_s lag_s rpc/min ssh
for i in $(seq 1 "$runs"); do
	r0=$(rpcs) c0=$(connections) t0=$(date +%s.%N)
	set +e
	TRTLLM_DIR=$work/trtllm CONFIG_NAME=tc_gen_only_1node DOCKER_IMAGE=nvcr.io/nvidia/tensorrt-llm/release:bench \
		CLUSTER_LLM_DATA=$work/models CLUSTER_WORKDIR=$work/jobs WORKSPACE=$work/ws DISAGG_RUN_ID=bench-$$-$i \
		bin/disagg-runner run >/dev/null 2>"$work/stderr"
	rc=$?
	set -e
	t1=$(date +%s.%N) r1=$(rpcs) c1=$(connections)
	summary=$work/ws/disagg-runner/bench-$$-$i/results/summary.json
	lag=$(python3 - "$summary" <<'PY'
import json, sys
from datetime import datetime
s = json.load(open(sys.argv[1]))
f = lambda k: datetime.fromisoformat(s[k].replace("Z", "+00:00"))
print(f"{(f('end_noticed') - f('ended')).total_seconds():.2f}")
PY
)
	lags+=("$lag")
	wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
	perMin=$(awk -v n=$((r1 - r0)) -v w="$wall" 'BEGIN { printf "%.1f", n * 60 / w }')
	printf '%-4s %-10s %-8s %-10s %-8s %-6s\n' "$i" "$rc" "$wall" "$lag" "$perMin" $((c1 - c0))
done
median=$(printf '%s\n' "${lags[@]}" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
echo "median lag between Slurm's end time (1 s resolution) and the runner noticing it: ${median} s"
