#!/bin/bash
# Per-rank entry point of the cache-transceiver precheck steps (stand-in
# checkout). pytestCommand holds the generator's precheck command: the same
# UCX and worker environment as the real worker step, then
# "python3 .../run_precheck.py ...". The stand-in python3 on PATH routes that
# script to the bash precheck, so no Python is needed.
set -euo pipefail

: "${llmSrcNode:?llmSrcNode must be exported by the launch script}"
: "${pytestCommand:?pytestCommand must be set by the precheck gate}"
export PATH="$llmSrcNode/standin/precheck-bin:$llmSrcNode/standin/bin:$PATH"

echo "Precheck rank ${SLURM_PROCID:-0} (${DISAGG_SERVING_TYPE:-?}) on ${SLURMD_NODENAME:-$(hostname -s)}: $pytestCommand"
# Same reasoning as slurm_run.sh: the command's own failure must become the
# exit code, not kill this script before it reports.
set +eu
eval "$pytestCommand"
precheckRc=$?
set -eu
echo "Rank${SLURM_PROCID:-0} cache-transceiver precheck finished with exit code $precheckRc"
exit "$precheckRc"
