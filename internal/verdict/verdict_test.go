package verdict

import (
	"testing"
)

func TestDecide(t *testing.T) {
	rank := func(code string) []byte {
		return []byte("noise\n+ srun ...\nRank0 Pytest finished execution with exit code " + code + "\n")
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
		{"pass", Evidence{State: "COMPLETED", JobLog: rank("0")}, 0, 0},
		{"tests failed, draft cancelled the job", Evidence{State: "CANCELLED", CancelledBy: "0", JobLog: rank("1")}, 1, 1},
		{"no tests collected", Evidence{State: "CANCELLED", JobLog: rank("5")}, 5, 5},
		{"last Rank0 line wins (requeue)", Evidence{State: "COMPLETED", JobLog: append(rank("1"), rank("0")...)}, 0, 0},
		{"timeout beats everything", Evidence{State: "TIMEOUT", JobLog: rank("0")}, 124, 0},
		{"pass but node failed", Evidence{State: "NODE_FAIL", JobLog: rank("0")}, 14, 0},
		{"completed without evidence", Evidence{State: "COMPLETED", JobLog: []byte("hello\n")}, 14, -1},
		{"cancelled by someone else", Evidence{State: "CANCELLED", CancelledBy: "1001"}, 14, -1},
		{"crash: killed benchmark", Evidence{State: "CANCELLED", JobLog: rank("137")}, 14, 137},
		{"srun report", Evidence{State: "CANCELLED", JobLog: []byte("srun: error: node1: task 0: Exited with exit code 2\n")}, 2, 2},
		{"junit failures", Evidence{State: "FAILED", JUnit: [][]byte{xmlFail}}, 1, 1},
		{"junit pass needs COMPLETED", Evidence{State: "FAILED", JUnit: [][]byte{xmlPass}}, 14, 0},
		{"junit pass", Evidence{State: "COMPLETED", JUnit: [][]byte{xmlPass}}, 0, 0},
		{"junit empty", Evidence{State: "COMPLETED", JUnit: [][]byte{xmlEmpty}}, 5, 5},
		{"junit garbage ignored", Evidence{State: "FAILED", JUnit: [][]byte{[]byte("<not xml")}}, 14, -1},
		{"precheck lines are not pytest's", Evidence{State: "CANCELLED", JobLog: []byte("Rank0 cache-transceiver precheck finished with exit code 1\n")}, 14, -1},
		{"Rank1 lines are not the benchmark's", Evidence{State: "COMPLETED", JobLog: []byte("Rank1 Pytest finished execution with exit code 0\n")}, 14, -1},
	}
	for _, c := range cases {
		v := Decide(c.ev)
		if v.Code != c.code || v.PytestCode != c.pytest || v.Reason == "" {
			t.Errorf("%s: got code %d pytest %d (%s), want code %d pytest %d", c.name, v.Code, v.PytestCode, v.Reason, c.code, c.pytest)
		}
	}
}
