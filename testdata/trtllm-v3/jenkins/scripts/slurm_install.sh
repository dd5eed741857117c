#!/bin/bash
# Install script run once per node before any server starts (stand-in
# checkout). The real one installs the TensorRT-LLM wheel and test
# requirements; here there is nothing to install, so it only proves that a
# step ran on every node, or fails when a test asks it to
# (STANDIN_INSTALL_EXIT, see testdata/standin/README.md).
set -euo pipefail

: "${llmSrcNode:?llmSrcNode must be exported by the launch script}"
# shellcheck source=SCRIPTDIR/../../standin/lib/standin.sh
. "$llmSrcNode/standin/lib/standin.sh"
standin_load_knobs "$llmSrcNode"

code=$(standin_int_knob STANDIN_INSTALL_EXIT 0)
host=$(standin_host)
echo "Installing on $host (task ${SLURM_PROCID:-0} of ${SLURM_NTASKS:-1}): stand-in checkout $llmSrcNode, nothing to install"
if [ "$code" != 0 ]; then
    echo "Error: install failed on $host (exit code $code requested by STANDIN_INSTALL_EXIT)" >&2
    exit "$code"
fi
echo "Installation completed on $host"
