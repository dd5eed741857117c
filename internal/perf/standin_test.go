package perf

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runStandinBenchmark runs the stand-in pytest's BENCHMARK role of a copy
// of the v2 checkout on this machine, with the config's concurrency_list
// set to list and standin.env holding knobs. A router file is planted so
// that it finds no workers to wait for. It returns the output folder (as
// a results folder holds it) and the job log (its stdout).
func runStandinBenchmark(t *testing.T, list, knobs string) (dir string, jobLog []byte) {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	tmp := t.TempDir()
	co := filepath.Join(tmp, "trtllm")
	if err := os.CopyFS(co, os.DirFS(filepath.Join("..", "..", "testdata", "trtllm-v2"))); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(co, "tests/scripts/perf-sanity/disaggregated/tc_ctx1_gen1_2nodes.yaml")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	data = regexp.MustCompile(`(?m)^(\s*concurrency_list:).*$`).ReplaceAll(data, []byte("${1} '"+list+"'"))
	write(t, cfg, string(data))
	write(t, filepath.Join(co, "standin.env"), knobs)
	out := filepath.Join(tmp, "ws")
	write(t, filepath.Join(out, "standin-coord", "nojob.0", "DISAGG_SERVER"), "node1:8000\n")
	write(t, filepath.Join(tmp, "test_list.txt"), testID+"\n")
	cmd := exec.Command(filepath.Join(co, "standin/bin/pytest"), "--output-dir="+out+"/", "--test-list="+filepath.Join(tmp, "test_list.txt"), "--junit-xml="+filepath.Join(out, "results.xml"))
	cmd.Env = append(os.Environ(), "DISAGG_SERVING_TYPE=BENCHMARK", "SLURM_JOB_ID=", "STANDIN_PING_TIMEOUT=1")
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("stand-in benchmark: %v\n%s", err, stdout)
	}
	write(t, filepath.Join(out, JobLogName), string(stdout))
	return out, stdout
}

// The stand-in benchmark prints blocks of the client's exact layout, one
// per concurrency of its config, into trtllm-benchmark.0.<k>.log and on
// stdout; its knobs change the numbers.
func TestStandinBenchmarkBlocks(t *testing.T) {
	dir, jobLog := runStandinBenchmark(t, "1 4 16", "STANDIN_OUTPUT_TPUT=200\n")
	s := Collect(dir, Run{TestID: testID, ConcurrencyList: "1 4 16"})
	if s.Source != "per-concurrency logs" || len(s.Problems) != 0 || len(s.Concurrencies) != 3 {
		t.Fatalf("source %q problems %q points %d", s.Source, s.Problems, len(s.Concurrencies))
	}
	for _, p := range s.Concurrencies {
		if !p.Complete || p.Source != "disagg_upload-e2e-tc_ctx1_gen1_2nodes/trtllm-benchmark.0."+map[int]string{1: "0", 4: "1", 16: "2"}[p.Concurrency]+".log:1" {
			t.Errorf("point %d: %+v", p.Concurrency, p)
		}
	}
	if v := s.Metric(1, "output_throughput").Value; v != 200 {
		t.Errorf("output throughput at 1: %v", v)
	}
	// Every row is "{:<40} {:<10}": the stand-in's block is what
	// FormatBlock makes of the same values.
	logBlocks, _ := ParseBlocks("log", jobLog)
	file, _ := os.ReadFile(filepath.Join(dir, "disagg_upload-e2e-tc_ctx1_gen1_2nodes", "trtllm-benchmark.0.1.log"))
	if len(logBlocks) != 3 || string(file) != FormatBlock(logBlocks[1].Values) {
		t.Errorf("%d blocks on stdout; the log file\n%s\nis not laid out as\n%s", len(logBlocks), file, FormatBlock(logBlocks[1].Values))
	}

	dir, _ = runStandinBenchmark(t, "2", "STANDIN_FAILED_REQUESTS=3\nSTANDIN_DROP_METRIC='P99 TPOT (ms)'\nSTANDIN_GEN_ONLY_STEP_TIME=12.5\n")
	s = Collect(dir, Run{TestID: testID, ConcurrencyList: "2"})
	p := s.Point(2)
	if p == nil || strings.Join(p.Incomplete, "; ") != "3 failed requests; missing tpot_p99" || p.Metrics["device_step_time"].Value != 12.5 {
		t.Errorf("knobs: %+v", p)
	}

	// The older test: blocks only in the job log.
	dir, _ = runStandinBenchmark(t, "1 8", "STANDIN_BENCH_LOGS=0\n")
	s = Collect(dir, Run{TestID: testID, ConcurrencyList: "1 8"})
	if s.Source != "the job log" || len(s.Concurrencies) != 2 || !s.Point(8).Complete {
		t.Errorf("job log only: %q %+v", s.Source, s.Concurrencies)
	}
}
