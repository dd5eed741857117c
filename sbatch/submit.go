package sbatch

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/disagg-runner/disagg-runner/internal/lazyre"
	"github.com/disagg-runner/disagg-runner/internal/shellquote"
)

// ErrAlreadySubmitted is in the chain of Submit's error when the job id
// file already names a job: a previous run submitted it, and submitting
// again would run the test twice. Submit returns that job's id with it, so
// that the caller can attach instead.
var ErrAlreadySubmitted = errors.New("a job was already submitted for this workspace")

// ErrSubmitRefused is in the chain of Submit's error when sbatch refused
// the job; the error's message is sbatch's own error line.
var ErrSubmitRefused = errors.New("sbatch refused the job")

// refused is a refusal with sbatch's message.
type refused struct{ msg string }

func (r *refused) Error() string        { return r.msg }
func (r *refused) Is(target error) bool { return target == ErrSubmitRefused }

func refusedf(format string, args ...any) error { return &refused{fmt.Sprintf(format, args...)} }

// retryableSubmit are sbatch failures in which the controller provably did
// not create a job, so submitting again cannot make a second one. The
// wording is Slurm's (slurm_errno.c): the connection was never made, the
// controller that answered is a backup in standby, or the controller's rate
// limiter turned the request away. sbatch already retries on its own the
// rejections that mean "busy" (queue full, EAGAIN).
//
// Deliberately absent: "Socket timed out on send/recv operation", "(receive
// failure)" and "Zero Bytes were transmitted or received": the request may
// have reached slurmctld and created the job before the answer was lost.
var retryableSubmit = []string{
	"Unable to contact slurm controller (connect failure)",
	"backup controller in standby mode",
	"Rate limit exceeded",
}

// mayHaveSubmitted are failures after which a job may exist anyway.
var mayHaveSubmitted = []string{
	"Socket timed out",
	"receive failure",
	"Zero Bytes were transmitted",
}

// jobIDPattern is what sbatch --parsable prints before an optional
// ";cluster": a job id, or an array job's "id_task".
var jobIDPattern = lazyre.New(`^[0-9]+(_[0-9]+)?$`)

// ValidJobID reports whether s is a Slurm job id: "1234", or an array
// task's "1234_5".
func ValidJobID(s string) bool { return jobIDPattern.MatchString(s) }

// Submit runs `sbatch --parsable <script>` in dir and, in the same remote
// command, records the job id in jobIDFile (a temporary file renamed into
// place; a relative jobIDFile is taken from dir), so that a rerun after a
// lost connection finds the live job instead of submitting a second one.
//
// It refuses (ErrAlreadySubmitted, with the recorded id) when jobIDFile
// already names a job. It retries, with backoff and at most SubmitRetries
// times, only the rejections in which Slurm created no job; any other
// refusal is an ErrSubmitRefused error carrying sbatch's own error
// line. When the connection drops during the command, the job id file
// decides whether the job went in. A job that was submitted but whose id
// could not be recorded comes back with its id and an error, so that the
// caller can cancel or keep it.
func (c *Client) Submit(ctx context.Context, dir, script, jobIDFile string) (JobID, error) {
	cmd := submitCommand(dir, script, jobIDFile)
	wait := 2 * c.Policy.fastPoll()
	for attempt := 0; ; attempt++ {
		out, err := c.run(ctx, cmd)
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if connectionLost(err) {
			return c.submitOutcomeAfterLoss(ctx, dir, jobIDFile, err)
		}
		id, idErr := parseSubmitOutput(out.stdout)
		if idErr == nil && strings.HasPrefix(lastLine(out.stdout), "already ") {
			return id, fmt.Errorf("%w: %s records job %s", ErrAlreadySubmitted, jobIDFile, id)
		}
		if idErr == nil {
			if err != nil {
				return id, fmt.Errorf("job %s was submitted, but recording its id in %s failed: %s; cancel it or attach to it by id",
					id, jobIDFile, errorLine(out.stderr))
			}
			c.logf("submitted %s in %s as job %s", script, dir, id)
			return id, nil
		}
		if err == nil {
			// sbatch said it succeeded but printed no id: the job may
			// exist, and nothing can find it for us.
			return "", refusedf("sbatch %s: no job id in its output %q: %v", script, firstChars(out.stdout, 200), idErr)
		}
		if _, ran := exitCode(err); !ran {
			return "", fmt.Errorf("sbatch %s: %w", script, err)
		}
		msg := errorLine(out.stderr)
		if msg == "" {
			msg = err.Error()
		}
		if containsAny(msg, retryableSubmit) && attempt < c.Policy.submitRetries() {
			c.logf("%s; submitting again in %s (retry %d of %d)", msg, wait, attempt+1, c.Policy.submitRetries())
			if err := sleep(ctx, wait); err != nil {
				return "", err
			}
			wait = min(2*wait, 30*c.Policy.fastPoll())
			continue
		}
		if containsAny(msg, mayHaveSubmitted) {
			return "", refusedf(
				"%s (the controller may have created the job anyway: look for it with squeue before submitting again)", msg)
		}
		return "", &refused{msg}
	}
}

// submitCommand is the one remote command that submits and records. The
// id goes to stdout before it is recorded, so that a failure to record
// still tells the caller which job exists. sbatch runs without slurmEnv:
// the job inherits sbatch's environment, and TZ is the test's business.
func submitCommand(dir, script, jobIDFile string) string {
	return fmt.Sprintf(`cd -- %s || exit 1
f=%s
if [ -s "$f" ]; then printf 'already %%s\n' "$(head -c 100 -- "$f")"; exit 0; fi
out=$(sbatch --parsable -- %s) || exit
printf '%%s\n' "$out"
tmp="$f.tmp.$$"
if ! { printf '%%s\n' "${out%%%%;*}" > "$tmp" && mv -f -- "$tmp" "$f"; }; then
  rm -f -- "$tmp"
  echo "error: cannot write $f" >&2
  exit 1
fi`, shellquote.Quote(dir), shellquote.Quote(jobIDFile), shellquote.Quote(script))
}

// parseSubmitOutput reads the id from sbatch --parsable's "<id>" or
// "<id>;<cluster>" (or the script's "already <id>").
func parseSubmitOutput(stdout string) (JobID, error) {
	line := strings.TrimPrefix(lastLine(stdout), "already ")
	id, _, _ := strings.Cut(line, ";")
	id = strings.TrimSpace(id)
	if !jobIDPattern.MatchString(id) {
		return "", fmt.Errorf("not a job id: %q", line)
	}
	return JobID(id), nil
}

// submitOutcomeAfterLoss decides what a submission cut by a lost
// connection did. The remote command records the id right after sbatch
// answers, so a recorded id means the job exists; the file is read a few
// times because the remote side may still be finishing when we reconnect.
func (c *Client) submitOutcomeAfterLoss(ctx context.Context, dir, jobIDFile string, lost error) (JobID, error) {
	path := jobIDFile
	if !strings.HasPrefix(path, "/") {
		path = strings.TrimSuffix(dir, "/") + "/" + path
	}
	for try := 0; try < 3; try++ {
		if try > 0 {
			if err := sleep(ctx, c.Policy.fastPoll()); err != nil {
				return "", err
			}
		}
		id, err := c.Recorded(ctx, path)
		if err == nil && id != "" {
			c.logf("the connection dropped during sbatch, but %s records job %s", path, id)
			return id, nil
		}
		if err != nil && ctx.Err() != nil {
			return "", ctx.Err()
		}
	}
	return "", fmt.Errorf("the connection dropped while sbatch ran and %s records no job; a job may still have been submitted (look with squeue): %w", path, lost)
}

// Recorded reads the job id that Submit recorded in jobIDFile; a missing
// or empty file is "", nil (nothing was submitted from this workspace).
func (c *Client) Recorded(ctx context.Context, jobIDFile string) (JobID, error) {
	f := shellquote.Quote(jobIDFile)
	out, err := c.run(ctx, "if [ -e "+f+" ]; then head -c 100 -- "+f+"; fi")
	if err != nil {
		return "", commandError("read "+jobIDFile, out, err)
	}
	if strings.TrimSpace(out.stdout) == "" {
		return "", nil
	}
	id, err := parseSubmitOutput(out.stdout)
	if err != nil {
		return "", fmt.Errorf("%s: %w", jobIDFile, err)
	}
	return id, nil
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
