# Cache-transceiver precheck gate of the stand-in checkouts (perf-sanity-v2
# and -v3 layouts; v3 also finds it here when the draft lies elsewhere). The
# generator inserts this file, stripped of indentation and blank lines,
# between srunArgs and the draft, so it must only define functions and
# must not depend on indentation. The draft calls
# run_cache_transceiver_precheck once genNodeLists/ctxNodeLists exist, and
# provides fail_and_cancel.

# The generated prefix exports the settings this file reads.
# shellcheck disable=SC2154

ct_xml_escape() {
    sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g'
}

# One step per server instance with the same node slice, rank count and MPI
# plugin as the server it stands for, so a pass means those very nodes can
# talk. The timeout keeps a hung transfer from eating the job's time limit.
ct_precheck_start() {
    local name=$1 nodes=$2 perNode=$3 nodeList=$4 command=$5
    DISAGG_SERVING_TYPE="${name^^}_PRECHECK" pytestCommand="$command" \
        timeout -k 10 "$ctPrecheckTimeout" srun "${srunArgs[@]}" --mpi=pmix -N "$nodes" --ntasks=$((nodes * perNode)) --ntasks-per-node="$perNode" -w "$nodeList" bash "$precheckRunScript" &> "$ctPrecheckDir/logs/$name.log" &
    ctPrecheckPids+=("$!")
    ctPrecheckNames+=("$name")
    echo "Started precheck $name on $nodeList (log: $ctPrecheckDir/logs/$name.log)"
}

run_cache_transceiver_precheck() {
    if [ "${ctPrecheckEnabled:-0}" != "1" ]; then
        echo "Cache transceiver precheck disabled (ctPrecheckEnabled=${ctPrecheckEnabled:-unset}); skipping it"
        return 0
    fi
    if [ "${TRTLLM_DISAGG_BENCHMARK_GEN_ONLY:-0}" = "1" ]; then
        echo "Cache transceiver precheck skipped: without context servers no KV cache moves"
        return 0
    fi
    local i k rc verdict suite message failures=0 cases="" junitXml
    ctPrecheckDir="$testOutputDir/cache_transceiver_precheck"
    # Verdicts left by an earlier job in the same workspace must not count.
    rm -rf "$ctPrecheckDir/status" "$ctPrecheckDir/ranks"
    mkdir -p "$ctPrecheckDir/logs" "$ctPrecheckDir/status"
    ctPrecheckPids=()
    ctPrecheckNames=()
    echo "Starting cache transceiver precheck (at most ${ctPrecheckTimeout}s per step)"
    for i in $(seq 0 $((numGenServers - 1))); do
        ct_precheck_start "gen_$i" "$nodesPerGenServer" "$gpusPerNodePerGenServer" "${genNodeLists[$i]}" "$pytestCommandGENPrecheck --server-idx $i"
    done
    for i in $(seq 0 $((numCtxServers - 1))); do
        ct_precheck_start "ctx_$i" "$nodesPerCtxServer" "$gpusPerNodePerCtxServer" "${ctxNodeLists[$i]}" "$pytestCommandCTXPrecheck --server-idx $i"
    done
    suite=$(printf '%s' "$stageName" | ct_xml_escape)
    for k in "${!ctPrecheckPids[@]}"; do
        rc=0
        wait "${ctPrecheckPids[$k]}" || rc=$?
        verdict=$(head -n 1 "$ctPrecheckDir/status/${ctPrecheckNames[$k]}.status" 2> /dev/null || true)
        if [ "$rc" -eq 0 ] && [[ $verdict == PASS* ]]; then
            echo "Precheck ${ctPrecheckNames[$k]}: $verdict"
            cases+="<testcase classname=\"$suite\" name=\"cache_transceiver_precheck[${ctPrecheckNames[$k]}]\" time=\"0\"/>"
            continue
        fi
        failures=$((failures + 1))
        if [ -z "$verdict" ]; then
            verdict="NO_STATUS: step ended with exit code $rc before writing a verdict (124 = timed out)"
        fi
        echo "Precheck ${ctPrecheckNames[$k]} FAILED (exit code $rc): $verdict"
        echo "----- last lines of $ctPrecheckDir/logs/${ctPrecheckNames[$k]}.log -----"
        tail -n 20 "$ctPrecheckDir/logs/${ctPrecheckNames[$k]}.log" 2> /dev/null || true
        echo "----- end of $ctPrecheckDir/logs/${ctPrecheckNames[$k]}.log -----"
        message=$(printf '%s' "$verdict" | ct_xml_escape)
        cases+="<testcase classname=\"$suite\" name=\"cache_transceiver_precheck[${ctPrecheckNames[$k]}]\" time=\"0\"><failure message=\"$message\">$message</failure></testcase>"
    done
    if [ "$failures" -eq 0 ]; then
        echo "Cache transceiver precheck PASSED for all ${#ctPrecheckNames[@]} servers"
        return 0
    fi
    # A junit entry makes the failure visible in the test report even though
    # pytest never ran.
    junitXml="$jobWorkspace/results-ct-precheck.xml"
    if printf '%s\n%s\n' '<?xml version="1.0" encoding="utf-8"?>' "<testsuites><testsuite name=\"$suite\" errors=\"0\" failures=\"$failures\" skipped=\"0\" tests=\"${#ctPrecheckNames[@]}\" time=\"0\">$cases</testsuite></testsuites>" > "$junitXml" 2> /dev/null; then
        echo "Precheck junit result written to $junitXml"
    fi
    fail_and_cancel "Cache transceiver precheck failed for $failures of ${#ctPrecheckNames[@]} servers; no server was started (details in $ctPrecheckDir)"
}
