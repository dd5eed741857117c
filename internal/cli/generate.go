package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/disagg-runner/disagg-runner/internal/atomicfile"
	"github.com/disagg-runner/disagg-runner/internal/checkoutgen"
	"github.com/disagg-runner/disagg-runner/internal/inputfile"
	"github.com/disagg-runner/disagg-runner/internal/launch"
	"github.com/disagg-runner/disagg-runner/internal/termtext"
	"github.com/disagg-runner/disagg-runner/runner"
)

// generateCmd takes submit.py's flags, so that a CI script can swap
// `python3 submit.py` for `disagg-runner generate` and nothing else.
type generateCmd struct {
	RunCI         bool   `name:"run-ci" help:"Accepted for compatibility with disagg-v1's submit.py; generation is always CI mode."`
	LLMSrc        string `name:"llm-src" required:"" help:"TensorRT-LLM checkout root (the config YAML is found under it; relative paths stay relative in the output)." placeholder:"DIR"`
	TestList      string `name:"test-list" required:"" help:"Test list file: pytest ids such as perf/test_perf_sanity.py::test_e2e[disagg_upload-<config>]." placeholder:"FILE"`
	DraftLaunchSh string `name:"draft-launch-sh" required:"" help:"The checkout's draft launch logic (jenkins/scripts/perf/disaggregated/slurm_launch_draft.sh)." placeholder:"FILE"`
	LaunchSh      string `name:"launch-sh" help:"Where to write launch.sh (atomically, through a symbolic link; a device, FIFO or folder there is refused; nothing is written on error). Required unless --print." placeholder:"FILE"`
	RunSh         string `name:"run-sh" required:"" help:"Run script path as seen from the nodes (written into the script)." placeholder:"PATH"`
	InstallSh     string `name:"install-sh" required:"" help:"Install script path as seen from the nodes (written into the script)." placeholder:"PATH"`
	ScriptPrefix  string `name:"script-prefix" required:"" help:"Script prefix file: #SBATCH directives and export lines, including 'export pytestCommand=...'." placeholder:"FILE"`
	SrunArgs      string `name:"srun-args" required:"" help:"File of whitespace-separated srun options for every step." placeholder:"FILE"`
	SplitGroup    int    `name:"split-group" default:"0" help:"perf-sanity-v2/v3: which test of the list to run, 1-based; 0 means the first. perf-sanity-v3 with pytest-split options (--splits, --group) in the pytestCommand line: the group to run, chosen as pytest-split's least_duration does."`
	StageName     string `name:"stage-name" default:"" help:"perf-sanity-v2: the Jenkins stage name; GB300 and B200 in it select UCX settings. perf-sanity-v3: written as stageName (omitted when empty)."`
	ClusterName   string `name:"cluster-name" default:"" help:"perf-sanity-v3: the cluster's name; its prefix (gcp-nrt, oci-aga, nsc-svg, aws-cmh, aws-dfw, any case) selects UCX settings. Empty (the default, or --cluster-name=) selects none." placeholder:"NAME"`

	Profile        string `name:"profile" env:"DISAGG_PROFILE" enum:",disagg-v1,perf-sanity-v2,perf-sanity-v3,checkout" default:"" help:"Generator profile: disagg-v1, perf-sanity-v2 or perf-sanity-v3, or checkout: run the checkout's own submit.py with python3 (needs PyYAML) instead of disagg-runner's generator, for a generation disagg-runner does not know. Default: detected from the checkout: perf-sanity-v3 when it has jenkins/scripts/perf/cluster_env.py and benchmark_utils.py (one without the other is refused), else perf-sanity-v2 when it has jenkins/scripts/perf/submit.py and tests/scripts/perf-sanity/disaggregated/, else disagg-v1."`
	Print          bool   `name:"print" help:"Write the generated script to stdout instead of --launch-sh; the summary goes to stderr."`
	StrictContract bool   `name:"strict-contract" help:"Fail (exit 11, nothing written) when the draft uses variables the profile does not define. Without it, generate only warns; run always refuses."`
	Compare        bool   `name:"compare-with-checkout" help:"Also run the checkout's own submit.py (jenkins/scripts/perf/submit.py; disagg-v1: jenkins/scripts/perf/disaggregated/submit.py, with --run-ci) with python3 on the same inputs, into a temporary folder, and compare its launch.sh with ours byte for byte: prints identical (exit 0; --launch-sh/--print then get the script as usual), or the first differing line of both (exit 11, nothing written). Exit 10 when python3, its PyYAML or the checkout's generator is missing. --launch-sh is optional with it."`
}

func (c *generateCmd) Run(ctx context.Context, env Env) error {
	if c.LaunchSh == "" && !c.Print && !c.Compare {
		return badInput(errors.New("--launch-sh is required (or --print to write the script to stdout)"))
	}
	if c.Profile == checkoutgen.Profile {
		if c.Compare {
			return badInput(errors.New("--compare-with-checkout compares disagg-runner's generator with the checkout's; with --profile checkout there is nothing to compare"))
		}
		return c.runCheckout(ctx, env)
	}
	profile := launch.Profile(c.Profile)
	if profile == "" {
		var err error
		if profile, err = runner.DetectProfileChecked(env.Dir, c.LLMSrc); err != nil {
			return badInput(err)
		}
	}
	req := launch.Request{
		Names:        generateFlags,
		Profile:      profile,
		LLMSrc:       c.LLMSrc,
		TestListPath: c.TestList,
		DraftPath:    c.DraftLaunchSh,
		PrefixPath:   c.ScriptPrefix,
		SrunArgsPath: c.SrunArgs,
		RunSh:        c.RunSh,
		InstallSh:    c.InstallSh,
		SplitGroup:   c.SplitGroup,
		StageName:    c.StageName,
		ClusterName:  c.ClusterName,
	}
	if v, ok := env.LookupEnv("TRTLLM_DISAGG_CT_PRECHECK"); ok {
		req.PrecheckSwitch = &v
	}
	req.ModelsRootEnv, _ = env.LookupEnv("LLM_MODELS_ROOT")
	// Paths stay as given (relative ones are written relative, as
	// submit.py writes them) and are read from the Env's folder.
	read := func(p string) ([]byte, error) { return inputfile.Read(env.abs(p)) }
	res, err := launch.Generate(req, read)
	if err != nil {
		return badInput(err)
	}

	summary := env.Stdout
	if c.Print {
		summary = env.Stderr
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(summary, termtext.Line(w))
	}
	if len(res.Contract) > 0 {
		msg := launch.FormatMissing(c.DraftLaunchSh, profile, res.Contract)
		if c.StrictContract {
			return badInput(errors.New(msg))
		}
		fmt.Fprintf(env.Stderr, "disagg-runner: warning: %s\n", termtext.OneLine(msg))
	}
	writeSummary(summary, res)
	if c.Compare {
		if err := c.compare(ctx, env, summary, profile, res.Script); err != nil {
			return err
		}
		if c.LaunchSh == "" && !c.Print {
			return nil
		}
	}
	if c.Print {
		_, err := env.Stdout.Write(res.Script)
		return err
	}
	if err := atomicfile.Write(env.abs(c.LaunchSh), res.Script, 0o644); err != nil {
		return badInput(fmt.Errorf("writing --launch-sh: %w", err))
	}
	fmt.Fprintf(summary, "Launch script generated at: %s\n", termtext.Line(c.LaunchSh))
	return nil
}

// checkoutRequest is the checkout's own generator on generate's inputs,
// flag for flag, run from the Env's folder with its PATH.
func (c *generateCmd) checkoutRequest(env Env, profile launch.Profile) checkoutgen.Request {
	return checkoutgen.Request{
		Profile: profile, LLMSrc: c.LLMSrc, TestList: c.TestList, DraftLaunchSh: c.DraftLaunchSh,
		RunSh: c.RunSh, InstallSh: c.InstallSh, ScriptPrefix: c.ScriptPrefix, SrunArgs: c.SrunArgs,
		SplitGroup: c.SplitGroup, StageName: c.StageName, ClusterName: c.ClusterName,
		Dir: env.Dir, Env: env.childEnviron(), LaunchShName: c.LaunchSh,
	}
}

// compare runs the checkout's own generator on the same inputs and
// compares its launch.sh with ours.
func (c *generateCmd) compare(ctx context.Context, env Env, w io.Writer, profile launch.Profile, ours []byte) error {
	req := c.checkoutRequest(env, profile)
	theirs, err := checkoutgen.Run(ctx, req)
	var failed *checkoutgen.FailedError
	switch {
	case errors.As(err, &failed):
		return &differsError{fmt.Sprintf("disagg-runner's generator succeeded, but %v; they differ (nothing written)", err)}
	case err != nil:
		return err
	}
	d := checkoutgen.Compare(ours, theirs.Script)
	if d == nil {
		fmt.Fprintf(w, "identical: launch.sh is byte for byte what %s writes (%s)\n", theirs.Generator, theirs.Python)
		return nil
	}
	fmt.Fprintf(w, "launch.sh differs from what %s writes (%s).\n%s", theirs.Generator, theirs.Python, d.Format("disagg-runner", "submit.py"))
	return &differsError{fmt.Sprintf("launch.sh differs from the checkout's generator %s at line %d (nothing written): this checkout may be of a generation disagg-runner does not know; --profile checkout uses its own submit.py", theirs.Generator, d.Line)}
}

// runCheckout is --profile checkout: the checkout's own submit.py makes
// launch.sh; disagg-runner writes it (atomically) or prints it, and checks
// the draft's variables against it as for its own profiles.
func (c *generateCmd) runCheckout(ctx context.Context, env Env) error {
	req := c.checkoutRequest(env, runner.DetectLayout(env.Dir, c.LLMSrc))
	summary := env.Stdout
	if c.Print {
		summary, req.LaunchShName = env.Stderr, "(stdout)"
	}
	// The draft is read first: a missing one is bad input, whatever the
	// checkout's generator would say.
	draft, err := os.ReadFile(env.abs(c.DraftLaunchSh))
	if err != nil {
		return badInput(pathError("--draft-launch-sh", c.DraftLaunchSh, err))
	}
	res, err := checkoutgen.Run(ctx, req)
	var missing *checkoutgen.MissingError
	switch {
	case errors.As(err, &missing):
		return err
	case err != nil:
		return badInput(err)
	}
	fmt.Fprintf(summary, "Profile: %s (%s, run by %s)\n", checkoutgen.Profile, res.Generator, res.Python)
	if missing := launch.CheckContract(launch.ContractInput{Draft: draft, DraftPath: c.DraftLaunchSh, Defined: [][]byte{res.Script}}); len(missing) > 0 {
		msg := launch.FormatMissing(c.DraftLaunchSh, checkoutgen.Profile, missing)
		if c.StrictContract {
			return badInput(errors.New(msg))
		}
		fmt.Fprintf(env.Stderr, "disagg-runner: warning: %s\n", msg)
	}
	if c.Print {
		if _, err := env.Stdout.Write(res.Script); err != nil {
			return err
		}
	} else if err := atomicfile.Write(env.abs(c.LaunchSh), res.Script, 0o644); err != nil {
		return badInput(fmt.Errorf("writing --launch-sh: %w", err))
	}
	// Its own output, as a drop-in passes it on; it says where the script
	// went (the temporary path replaced by --launch-sh).
	summary.Write(res.Stdout)
	env.Stderr.Write(res.Stderr)
	return nil
}

// pathError names a file input by its flag and path, with the reason
// alone (an *fs.PathError would name the path twice).
func pathError(flag, path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("%s %s: %w", flag, path, err)
}

// generateFlags names the generator's inputs by generate's flags, which
// are submit.py's.
func generateFlags(input string) string {
	flag, ok := map[string]string{
		launch.InputCheckout:      "--llm-src",
		launch.InputTestList:      "--test-list",
		launch.InputDraft:         "--draft-launch-sh",
		launch.InputScriptPrefix:  "--script-prefix",
		launch.InputSrunArgs:      "--srun-args",
		launch.InputRunScript:     "--run-sh",
		launch.InputInstallScript: "--install-sh",
		launch.InputStageName:     "--stage-name",
		launch.InputSplitGroup:    "--split-group",
	}[input]
	if !ok {
		return input
	}
	return flag
}

// writeSummary prints what submit.py prints before writing: which test,
// which config, and the layout computed from it.
func writeSummary(w io.Writer, res *launch.Result) {
	h := res.Hardware
	mode := res.TestID.Mode
	if mode == "" {
		mode = "e2e"
		if res.GenOnly {
			mode = "gen_only"
		}
	}
	if res.GenOnly {
		mode += " (no context servers)"
	}
	fmt.Fprintf(w, "Profile: %s\n", res.Profile)
	fmt.Fprintf(w, "Test: %s\n", termtext.Line(res.TestID.Line))
	fmt.Fprintf(w, "Config: %s\n", termtext.Line(res.ConfigPath))
	fmt.Fprintf(w, "Benchmark mode: %s\n", mode)
	fmt.Fprintf(w, "Hardware: %d CTX server(s) x %d GPU(s) on %d node(s), %d GEN server(s) x %d GPU(s) on %d node(s), %d GPU(s) per node: %d node(s), %d GPU(s) in all\n",
		h.NumCtxServers, h.GPUsPerCtxServer, h.NodesPerCtxServer,
		h.NumGenServers, h.GPUsPerGenServer, h.NodesPerGenServer,
		h.GPUsPerNode, h.TotalNodes, h.TotalGPUs)
	if res.OutputDir != "" {
		fmt.Fprintf(w, "Test output dir: %s\n", termtext.Line(res.OutputDir))
	}
}

func (c *generateCmd) Help() string {
	return "Environment: TRTLLM_DISAGG_CT_PRECHECK switches the cache-transceiver precheck on or off (perf-sanity-v2: 1 is on, anything else off; perf-sanity-v3: 1/true/on/yes or 0/false/off/no, any case, anything else is an error); unset, the config's cache_transceiver_precheck.enabled decides. LLM_MODELS_ROOT (perf-sanity-v3) is the models root when the pytestCommand line does not assign one.\n\n" +
		"Exit codes: 0 written (with --compare-with-checkout: identical to the checkout's submit.py); 10 python3, PyYAML or the checkout's submit.py missing (--compare-with-checkout, --profile checkout); 11 bad input (nothing is written), including --strict-contract's refusal of a draft that uses variables the profile does not define, the checkout's submit.py failing, and a launch.sh that differs from the checkout's (--compare-with-checkout)."
}
