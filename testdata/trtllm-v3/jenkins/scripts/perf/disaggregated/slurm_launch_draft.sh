# Launch draft of the stand-in checkout (perf-sanity-v3 layout). The generator
# strips every line and drops blank ones, then puts it after the prefix, the
# srunArgs array and slurm_ct_precheck_gate.sh; it runs as the batch script on
# the first node of the allocation. It must work with or without
# "set -xEeuo pipefail" and an ERR trap in the prefix, so every command that
# may fail is tested or guarded, and nothing may depend on indentation.
# It differs from the v2 draft only where the v3 generator's exports differ:
# it reads ctPrecheckModelRootEnv, which only perf-sanity-v3 exports (paired
# with perf-sanity-v2, the contract check reports it missing).

# The generated prefix exports the settings this file reads.
# shellcheck disable=SC2154

# Cancelling the job, not just exiting, is what stops the server steps that
# are still running in the background; otherwise they hold the allocation
# until the time limit. The precheck gate calls this too.
fail_and_cancel() {
    echo "Error: $1"
    echo "Cancelling job ${SLURM_JOB_ID}"
    scancel "${SLURM_JOB_ID}"
    exit 1
}

# As TensorRT-LLM's current draft does when the benchmark fails, a server
# fails or the job is signalled: the tail of every role's log goes into the
# job log between these markers (each role log ends with that role's own
# Rank0 line, which a verdict must not take for the benchmark's), then the
# job cancels itself. STANDIN_DUMP_DELAY (in the checkout's standin.env)
# slows the dump down, so that a test can act while it runs.
dump_role_logs() {
    local f delay
    delay=$(sed -n 's/^STANDIN_DUMP_DELAY=//p' "$llmSrcNode/standin.env" 2> /dev/null | tail -n 1)
    echo "===== Per-role log tails (reason: $1) ====="
    for f in "$testOutputDir"/*_server*.log; do
        [ -e "$f" ] || continue
        echo "===== Last 20 lines of $f (redacted) ====="
        tail -n 20 "$f" | sed -E 's/((TOKEN|KEY|SECRET|PASSWORD)[A-Za-z_]*=)[^ ]*/\1****/g'
        [ -z "$delay" ] || sleep "$delay"
    done
    echo "===== End of per-role log tails ====="
}

dumping=0
on_signal() {
    if [ "$dumping" = 0 ]; then
        dumping=1
        dump_role_logs "job signalled"
    fi
    exit 143
}
trap on_signal TERM

# Comma-separated slice of the allocation's node list, for srun -w.
node_slice() {
    local start=$1 count=$2
    (IFS=,; echo "${allNodes[*]:start:count}")
}

mkdir -p "$jobWorkspace" "$testOutputDir"
[ -x "$runScript" ] || chmod +x "$runScript"
[ -x "$installScript" ] || chmod +x "$installScript"
genOnly=${TRTLLM_DISAGG_BENCHMARK_GEN_ONLY:-0}
echo "Disaggregated job: $numGenServers GEN x $gpusPerGenServer GPUs, $numCtxServers CTX x $gpusPerCtxServer GPUs, $totalNodes nodes, $totalGpus GPUs, gen-only=$genOnly, config $configYamlPath"
# perf-sanity-v3 turns the precheck off for a SKIP-waived test and hands the
# precheck steps the models root (ctPrecheckModelRootEnv, '' without one).
if [ -n "$ctPrecheckModelRootEnv" ]; then
    echo "Cache transceiver precheck: ctPrecheckEnabled=$ctPrecheckEnabled, step timeout ${ctPrecheckTimeout}s, steps get $ctPrecheckModelRootEnv"
else
    echo "Cache transceiver precheck: ctPrecheckEnabled=$ctPrecheckEnabled, step timeout ${ctPrecheckTimeout}s, no models root"
fi

# One install task per node. The task count is given explicitly because srun
# would otherwise take the job's task count from the environment.
echo "Running the install script on all $SLURM_JOB_NUM_NODES nodes"
if ! srun "${srunArgs[@]}" -N "$SLURM_JOB_NUM_NODES" --ntasks="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 "$installScript" &> "$jobWorkspace/install.log"; then
    fail_and_cancel "Install script failed, see $jobWorkspace/install.log"
fi
echo "Install finished on all nodes"

# Fixed node slices, GEN servers first, then CTX servers. The precheck gate
# runs on exactly these slices, so it tests the node pairs the servers use.
mapfile -t allNodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
nodeCursor=0
genNodeLists=()
for i in $(seq 0 $((numGenServers - 1))); do
    genNodeLists+=("$(node_slice "$nodeCursor" "$nodesPerGenServer")")
    nodeCursor=$((nodeCursor + nodesPerGenServer))
done
ctxNodeLists=()
if [ "$genOnly" != "1" ]; then
    for i in $(seq 0 $((numCtxServers - 1))); do
        ctxNodeLists+=("$(node_slice "$nodeCursor" "$nodesPerCtxServer")")
        nodeCursor=$((nodeCursor + nodesPerCtxServer))
    done
fi
if [ "$nodeCursor" -gt "${#allNodes[@]}" ]; then
    fail_and_cancel "The servers need $nodeCursor nodes but the job has ${#allNodes[@]} ($SLURM_JOB_NODELIST)"
fi

run_cache_transceiver_precheck

serverPids=()
serverNames=()
for i in $(seq 0 $((numGenServers - 1))); do
    export DISAGG_SERVING_TYPE="GEN_$i"
    export pytestCommand="$pytestCommandGENWorker"
    srun "${srunArgs[@]}" --mpi=pmix -N "$nodesPerGenServer" --ntasks=$((nodesPerGenServer * gpusPerNodePerGenServer)) --ntasks-per-node="$gpusPerNodePerGenServer" -w "${genNodeLists[$i]}" "$runScript" &> "$testOutputDir/gen_server_$i.log" &
    serverPids+=("$!")
    serverNames+=("gen_server_$i")
    echo "Started GEN_$i on ${genNodeLists[$i]} (log: $testOutputDir/gen_server_$i.log)"
done
if [ "$genOnly" != "1" ]; then
    for i in $(seq 0 $((numCtxServers - 1))); do
        export DISAGG_SERVING_TYPE="CTX_$i"
        export pytestCommand="$pytestCommandCTXWorker"
        srun "${srunArgs[@]}" --mpi=pmix -N "$nodesPerCtxServer" --ntasks=$((nodesPerCtxServer * gpusPerNodePerCtxServer)) --ntasks-per-node="$gpusPerNodePerCtxServer" -w "${ctxNodeLists[$i]}" "$runScript" &> "$testOutputDir/ctx_server_$i.log" &
        serverPids+=("$!")
        serverNames+=("ctx_server_$i")
        echo "Started CTX_$i on ${ctxNodeLists[$i]} (log: $testOutputDir/ctx_server_$i.log)"
    done
else
    echo "Gen-only benchmark without context servers: no CTX servers"
fi

# Router and benchmark share nodes with the workers, hence --overlap.
export DISAGG_SERVING_TYPE="DISAGG_SERVER"
export pytestCommand="$pytestCommandDisaggServer"
srun "${srunArgs[@]}" --overlap -N 1 --ntasks=1 -w "${allNodes[0]}" "$runScript" &> "$testOutputDir/disagg_server.log" &
serverPids+=("$!")
serverNames+=("disagg_server")
echo "Started DISAGG_SERVER on ${allNodes[0]} (log: $testOutputDir/disagg_server.log)"

# The benchmark writes to the job log, which is where its Rank line (pytest's
# exit code) is looked for.
export DISAGG_SERVING_TYPE="BENCHMARK"
export pytestCommand="$pytestCommandBenchmark"
echo "Starting BENCHMARK"
benchmarkRc=0
srun "${srunArgs[@]}" --overlap -N 1 --ntasks=1 "$runScript" || benchmarkRc=$?
if [ "$benchmarkRc" -ne 0 ]; then
    dumping=1
    dump_role_logs "benchmark failed with srun exit code $benchmarkRc"
    fail_and_cancel "Benchmark step failed (srun exit code $benchmarkRc); server logs are in $testOutputDir"
fi

# The servers stop on their own once the benchmark is done; give them a
# moment so their logs are complete, but never hang the job on them.
echo "Benchmark passed; waiting up to 30 s for the servers to stop"
waitUntil=$((SECONDS + 30))
for k in "${!serverPids[@]}"; do
    while kill -0 "${serverPids[$k]}" 2> /dev/null && [ "$SECONDS" -lt "$waitUntil" ]; do
        sleep 0.5
    done
done
failedServer=""
for k in "${!serverPids[@]}"; do
    if kill -0 "${serverPids[$k]}" 2> /dev/null; then
        echo "${serverNames[$k]} still running; it ends with the job"
    else
        stepRc=0
        wait "${serverPids[$k]}" || stepRc=$?
        echo "${serverNames[$k]} step exited with code $stepRc"
        if [ "$stepRc" -ne 0 ] && [ -z "$failedServer" ]; then
            failedServer="${serverNames[$k]} exited with code $stepRc"
        fi
    fi
done
if [ -n "$failedServer" ]; then
    dumping=1
    dump_role_logs "$failedServer"
    fail_and_cancel "A server failed: $failedServer"
fi
echo "Disaggregated job finished in $SECONDS s"
