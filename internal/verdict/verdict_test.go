package verdict

import (
	"strings"
	"syscall"
	"testing"
)

func log(s string) LogFacts { return ReadJobLog(strings.NewReader(s)) }

func TestDecide(t *testing.T) {
	rank := func(code string) string {
		return "noise\n+ srun ...\nRank0 Pytest finished execution with exit code " + code + "\n"
	}
	xmlFail := []byte(`<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="3" failures="1" errors="0"/></testsuites>`)
	xmlPass := []byte(`<testsuite name="pytest" tests="2" failures="0" errors="0"></testsuite>`)
	xmlEmpty := []byte(`<testsuites><testsuite tests="0" failures="0" errors="0"/></testsuites>`)
	cases := []struct {
		name   string
		ev     Evidence
		code   int
		pytest int
	}{
		{"pass", Evidence{State: "COMPLETED", Log: log(rank("0"))}, 0, 0},
		{"tests failed, draft cancelled the job", Evidence{State: "CANCELLED", CancelledBy: "0", Log: log(rank("1"))}, 1, 1},
		{"no tests collected", Evidence{State: "CANCELLED", Log: log(rank("5"))}, 5, 5},
		{"last Rank0 line wins (requeue)", Evidence{State: "COMPLETED", Log: log(rank("1") + rank("0"))}, 0, 0},
		{"timeout beats everything", Evidence{State: "TIMEOUT", Log: log(rank("0"))}, 124, 0},
		{"pass but node failed", Evidence{State: "NODE_FAIL", Log: log(rank("0"))}, 14, 0},
		{"completed without evidence", Evidence{State: "COMPLETED", Log: log("hello\n")}, 14, -1},
		{"cancelled by someone else", Evidence{State: "CANCELLED", CancelledBy: "1001"}, 14, -1},
		{"crash: killed benchmark", Evidence{State: "CANCELLED", Log: log(rank("137"))}, 14, 137},
		{"srun report", Evidence{State: "CANCELLED", Log: log("srun: error: node1: task 0: Exited with exit code 2\n")}, 2, 2},
		{"junit failures", Evidence{State: "FAILED", JUnit: [][]byte{xmlFail}}, 1, 1},
		{"junit pass needs COMPLETED", Evidence{State: "FAILED", JUnit: [][]byte{xmlPass}}, 14, 0},
		{"junit pass", Evidence{State: "COMPLETED", JUnit: [][]byte{xmlPass}}, 0, 0},
		{"junit empty", Evidence{State: "COMPLETED", JUnit: [][]byte{xmlEmpty}}, 5, 5},
		{"junit garbage ignored", Evidence{State: "FAILED", JUnit: [][]byte{[]byte("<not xml")}}, 14, -1},
		{"precheck lines are not pytest's", Evidence{State: "CANCELLED", Log: log("Rank0 cache-transceiver precheck finished with exit code 1\n")}, 14, -1},
		// The end was never seen (forgotten without accounting): a failure
		// still passes through, a pass cannot be called success.
		{"failed, final state unknown", Evidence{Log: log(rank("1"))}, 1, 1},
		{"passed, final state unknown", Evidence{Log: log(rank("0"))}, 14, 0},
		{"Rank1 lines are not the benchmark's", Evidence{State: "COMPLETED", Log: log("Rank1 Pytest finished execution with exit code 0\n")}, 14, -1},
	}
	for _, c := range cases {
		v := Decide(c.ev)
		if v.Code != c.code || v.PytestCode != c.pytest || v.Reason == "" {
			t.Errorf("%s: got code %d pytest %d (%s), want code %d pytest %d", c.name, v.Code, v.PytestCode, v.Reason, c.code, c.pytest)
		}
	}
}

// Today's upstream draft dumps every role's log tail into the job log when
// the benchmark fails, each ending with that role's own Rank0 line, then
// cancels its own job: the benchmark's line decides, never a dumped one.
func TestDecideIgnoresTheDraftsRoleLogDump(t *testing.T) {
	dump := func(reason string, roleCode string) string {
		return "===== Per-role log tails (reason: " + reason + ") =====\n" +
			"===== Last 3 lines of /ws/gen_server_0.log (redacted) =====\n" +
			"gen serving\nRank0 Pytest finished execution with exit code " + roleCode + "\n" +
			"===== Last 2 lines of /ws/ctx_server_0.log (redacted) =====\n" +
			"Rank0 Pytest finished execution with exit code " + roleCode + "\n" +
			"===== End of per-role log tails =====\n"
	}
	benchFails := "benchmark running\nRank0 Pytest finished execution with exit code 1\nsrun: error: node1: task 0: Exited with exit code 1\n" + dump("benchmark failed", "0")
	v := Decide(Evidence{State: "CANCELLED", Log: log(benchFails)})
	if v.Code != 1 || v.PytestCode != 1 || !strings.Contains(v.Source, "the benchmark step's Rank0 line (srun's report agrees)") || !strings.Contains(v.Source, "dump ignored") {
		t.Errorf("benchmark fails: %+v", v)
	}

	serverDied := "Rank0 Pytest finished execution with exit code 0\n" + dump("a server exited", "1")
	if v := Decide(Evidence{State: "CANCELLED", Log: log(serverDied)}); v.Code != 14 || v.PytestCode != 0 {
		t.Errorf("server died: %+v", v)
	}

	// Cut off inside the dump (SIGTERM while it runs): what is inside
	// still does not count.
	cut := "benchmark running\n" + dump("signal", "0")[:120]
	if v := Decide(Evidence{State: "CANCELLED", Log: log(cut), Interrupt: syscall.SIGTERM}); v.Code != 143 || v.PytestCode != -1 {
		t.Errorf("interrupted during the dump: %+v", v)
	}
}

func TestDecideSkipsOverlongLines(t *testing.T) {
	huge := strings.Repeat("x", 200<<10) + "Rank0 Pytest finished execution with exit code 3\n"
	v := Decide(Evidence{State: "COMPLETED", Log: log(huge + "Rank0 Pytest finished execution with exit code 0\n")})
	if v.Code != 0 || v.PytestCode != 0 {
		t.Errorf("%+v", v)
	}
}

func TestDecidePerfRegressionFailsOnlyAPassingRunAndOnlyWhenAsked(t *testing.T) {
	pass := log("Rank0 Pytest finished execution with exit code 0\n")
	fail := log("Rank0 Pytest finished execution with exit code 1\n")
	cases := []struct {
		ev   Evidence
		code int
	}{
		{Evidence{State: "COMPLETED", Log: pass, PerfRegressed: true, PerfText: "regressed: output_throughput 6% worse", FailOnRegression: true}, 15},
		{Evidence{State: "COMPLETED", Log: pass, PerfRegressed: true}, 0},
		{Evidence{State: "COMPLETED", Log: pass, FailOnRegression: true}, 0},
		{Evidence{State: "CANCELLED", Log: fail, PerfRegressed: true, FailOnRegression: true}, 1},
		{Evidence{State: "TIMEOUT", Log: pass, PerfRegressed: true, FailOnRegression: true}, 124},
	}
	for i, c := range cases {
		if v := Decide(c.ev); v.Code != c.code {
			t.Errorf("case %d: exit %d (%s), want %d", i, v.Code, v.Reason, c.code)
		}
	}
	if v := Decide(cases[0].ev); v.Reason != "pytest passed but performance regressed: output_throughput 6% worse" {
		t.Errorf("reason %q", v.Reason)
	}
}

// A failed precheck: the gate copies each failed step's log tail, srun's
// report of that step included, into the job log; no benchmark ran.
func TestDecideIgnoresCopiedPrecheckLogs(t *testing.T) {
	jobLog := "Precheck gen_0 FAILED (exit code 1): FAIL\n" +
		"----- last lines of /ws/cache_transceiver_precheck/logs/gen_0.log -----\n" +
		"srun: error: node1: task 0: Exited with exit code 1\n" +
		"----- end of /ws/cache_transceiver_precheck/logs/gen_0.log -----\n" +
		"Error: Cache transceiver precheck failed for 1 of 2 servers\n"
	v := Decide(Evidence{State: "CANCELLED", Log: log(jobLog)})
	if v.Code != 14 || v.PytestCode != -1 {
		t.Errorf("%+v", v)
	}
}

// The scanner sees the same facts whatever pieces the log arrives in.
func TestLogScannerPieces(t *testing.T) {
	// Stretches of lines that cannot matter, which pieces of many lines
	// pass at once, between the ones that do.
	filler := strings.Repeat("rank output\n", 2000)
	text := "a\r\n" + filler + "Rank0 Pytest finished execution with exit code 3\n" + filler + strings.Repeat("y", 70<<10) + "\n" + filler + "===== Per-role log tails (reason: x) =====\nRank0 Pytest finished execution with exit code 0\n===== End of per-role log tails =====\nsrun: error: n1: task 0: Exited with exit code 3"
	want := ReadJobLog(strings.NewReader(text))
	for _, size := range []int{1, 2, 7, 4096, 100 << 10} {
		sc := NewLogScanner()
		for i := 0; i < len(text); i += size {
			sc.Write([]byte(text[i:min(i+size, len(text))]))
		}
		if got := sc.Facts(); got != want || got.rank != 3 || got.srun != 3 || got.dumps != 1 {
			t.Errorf("pieces of %d: %+v, want %+v", size, got, want)
		}
	}
}

// BenchmarkLogScanner is the verdict's share of streaming a job log: ranks'
// output in 32 KiB pieces, as a poll delivers it, with the lines that
// count at the end.
func BenchmarkLogScanner(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchLogScanner(b, 0) })
	// A marker every 100 lines (a rank printing "----- " tables): each
	// piece is still searched once, not once per line.
	b.Run("markers", func(b *testing.B) { benchLogScanner(b, 100) })
}

func benchLogScanner(b *testing.B, markerEvery int) {
	var chunk []byte
	for i := 1; len(chunk) < 32<<10; i++ {
		if markerEvery > 0 && i%markerEvery == 0 {
			chunk = append(chunk, "[1,3]<stdout>: ----- table of this step -----\n"...)
			continue
		}
		chunk = append(chunk, "[1,3]<stdout>: step 1234 loss 0.123 tokens/s 45678 every rank's output, as a real log has it\n"...)
	}
	tail := []byte("Rank0 Pytest finished execution with exit code 0\n")
	const pieces = 2048 // 64 MiB and more
	b.SetBytes(int64(pieces*len(chunk) + len(tail)))
	for b.Loop() {
		s := NewLogScanner()
		for range pieces {
			s.Write(chunk)
		}
		s.Write(tail)
		if f := s.Facts(); f.rank != 0 {
			b.Fatalf("rank %d", f.rank)
		}
	}
}
