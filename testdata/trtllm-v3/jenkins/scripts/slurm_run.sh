#!/bin/bash
# Run script for every server and benchmark step of the disaggregated job
# (stand-in checkout). One copy runs per Slurm task; the role comes from
# DISAGG_SERVING_TYPE and the command from pytestCommand, both set by the
# launch script right before each srun.
#
# The runner reads pytest's exit code from the last line this script prints,
# "Rank<N> Pytest finished execution with exit code <code>", so everything
# before the eval may fail loudly, but the eval itself must never take the
# script down before that line is printed.
set -euo pipefail

: "${llmSrcNode:?llmSrcNode must be exported by the launch script}"
# The run script may be a copy uploaded next to the job, so the checkout is
# found through llmSrcNode, never through this file's own location.
# shellcheck source=SCRIPTDIR/../../standin/lib/standin.sh
. "$llmSrcNode/standin/lib/standin.sh"
standin_load_knobs "$llmSrcNode"

export PATH="$llmSrcNode/standin/bin:$PATH"
# Lets the stand-in benchmark crash this very script (STANDIN_CRASH=1).
export STANDIN_RUN_PID=$$

role=${DISAGG_SERVING_TYPE:-}
host=$(standin_host)
case $role in
    GEN_* | CTX_*) what="$role worker rank ${SLURM_PROCID:-0}/${SLURM_NTASKS:-1}" ;;
    DISAGG_SERVER) what="disaggregated router" ;;
    BENCHMARK) what="benchmark client" ;;
    '')
        echo "Error: DISAGG_SERVING_TYPE is not set; the launch script must set it before each srun" >&2
        exit 2
        ;;
    *)
        echo "Error: unknown DISAGG_SERVING_TYPE '$role'" >&2
        exit 2
        ;;
esac
: "${pytestCommand:?pytestCommand must be set by the launch script}"
echo "Starting $what on $host (job ${SLURM_JOB_ID:-?} step ${SLURM_STEP_ID:-?})"
echo "Full Command: $pytestCommand"

# The command may reference variables that are unset here (the launch script
# may not export everything it names); that must end in an exit code, not in
# a dead script without its final line.
set +eu
eval "$pytestCommand"
pytestExitCode=$?
set -eu

echo "Rank${SLURM_PROCID:-0} Pytest finished execution with exit code $pytestExitCode"
exit "$pytestExitCode"
