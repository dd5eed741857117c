package prefix

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/disagg-runner/disagg-runner/internal/launch"
)

// FuzzLimitSeconds: an accepted time limit is one of Slurm's forms, its
// fields within their bounds, at most MaxLimitSeconds in all, and the
// seconds it stands for read back the same from its canonical D-HH:MM:SS
// form.
func FuzzLimitSeconds(f *testing.F) {
	for _, s := range []string{"90", "10:30", "02:00:00", "1-00", "1-02:03", "1-0:0:5", "UNLIMITED", "25:99:99", "99999999999999999999", "365-00:00:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		secs, err := LimitSeconds(s)
		if err != nil {
			return
		}
		if secs < 0 || secs > MaxLimitSeconds {
			t.Fatalf("%q: %d seconds", s, secs)
		}
		if strings.ContainsAny(s, " \t\n\"'$;") {
			t.Fatalf("%q accepted", s)
		}
		if secs == 0 {
			return
		}
		canon := fmt.Sprintf("%d-%02d:%02d:%02d", secs/86400, secs%86400/3600, secs%3600/60, secs%60)
		if again, err := LimitSeconds(canon); err != nil || again != secs {
			t.Fatalf("%q is %d seconds, but %q reads as %d, %v", s, secs, canon, again, err)
		}
	})
}

// FuzzPytestCommand: an accepted replacement pytest command is plain text
// for the double quotes it is written in, and what the nodes eval of it
// runs nothing but itself (launch.CheckEvalBound, which names only inert
// variables).
func FuzzPytestCommand(f *testing.F) {
	for _, s := range []string{
		"pytest -v --junit-xml=$jobWorkspace/results.xml", "STANDIN_EXIT=1 ${llmSrcNode}/bin/pytest", "pytest -v $stageName",
		"pytest ${x:=a}", "pytest ${!x}", "pytest ${PATH@P}", "pytest $(reboot)", "pytest; reboot", "pytest `reboot`",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cmd string) {
		err := checkPytestCommand(cmd)
		var ve *ValidationError
		if err != nil {
			if !errors.As(err, &ve) || ve.Name != FieldPytestCommand {
				t.Fatalf("%q: %v", cmd, err)
			}
			return
		}
		if strings.ContainsAny(cmd, "\"'`\\;&|<>()\n\r") {
			t.Fatalf("%q accepted", cmd)
		}
		if launch.CheckEvalBound(cmd) != nil {
			t.Fatalf("%q accepted though the eval check refuses it", cmd)
		}
	})
}
