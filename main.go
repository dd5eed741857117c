// Command disagg-runner runs a TensorRT-LLM disaggregated-serving test on
// a Slurm cluster and returns pytest's exit code. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/disagg-runner/disagg-runner/internal/cli"
	"github.com/disagg-runner/disagg-runner/internal/exitcode"
	"github.com/disagg-runner/disagg-runner/runner"
)

func main() {
	// The first SIGINT/SIGTERM cancels the context with the signal as its
	// cause, so that the run can cancel its Slurm job, collect what exists
	// and exit 130/143; a second one exits at once.
	ctx, cancel := context.WithCancelCause(context.Background())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		first := <-signals
		cancel(runner.Interrupt{Signal: first})
		second := <-signals
		os.Exit(exitcode.ForSignal(second))
	}()
	os.Exit(cli.Main(ctx, os.Args[1:], cli.OSEnv()))
}
