package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/disagg-runner/disagg-runner/internal/shellquote"
	"github.com/disagg-runner/disagg-runner/internal/testcluster"
)

// These tests talk to the OpenSSH login node of scripts/testcluster, which
// they neither start nor stop. Run them with
//
//	DISAGG_TESTCLUSTER=1 go test ./transport/ -run Real
//
// The node is shared with other tests: nothing here assumes it is idle.

type realCluster struct {
	cfg     SSHConfig
	sshdLog string
	known   []ssh.PublicKey // the node's host keys, as its known_hosts lists them
}

func requireRealCluster(t testing.TB) *realCluster {
	t.Helper()
	env := testcluster.Env(t)
	var missing []string
	for _, name := range []string{"CLUSTER_HOST", "CLUSTER_PORT", "CLUSTER_USER", "CLUSTER_SSH_KEY", "CLUSTER_KNOWN_HOSTS", "TESTCLUSTER_SSHD_LOG"} {
		if env[name] == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("scripts/testcluster env does not set %s", strings.Join(missing, ", "))
	}
	port, err := strconv.Atoi(env["CLUSTER_PORT"])
	if err != nil {
		t.Fatalf("CLUSTER_PORT=%q: %v", env["CLUSTER_PORT"], err)
	}
	c := &realCluster{
		cfg: SSHConfig{
			Host:           env["CLUSTER_HOST"],
			Port:           port,
			User:           env["CLUSTER_USER"],
			KeyFile:        env["CLUSTER_SSH_KEY"],
			KnownHostsFile: env["CLUSTER_KNOWN_HOSTS"],
			Logf:           newLogLines(t).logf,
		},
		sshdLog: env["TESTCLUSTER_SSHD_LOG"],
	}
	data, err := os.ReadFile(c.cfg.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	for len(data) > 0 {
		_, _, key, _, rest, err := ssh.ParseKnownHosts(data)
		if err != nil {
			break
		}
		c.known = append(c.known, key)
		data = rest
	}
	if len(c.known) == 0 {
		t.Fatalf("%s lists no host keys", c.cfg.KnownHostsFile)
	}
	return c
}

// realCtx bounds a test on the shared login node. Its logins source the
// user's shell profile (pyenv, modules) and its Slurm commands wait for a
// controller that every test shares, which on a busy machine takes many
// times what it takes on a quiet one: the bound only turns a hang into a
// failure.
func realCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func (c *realCluster) dial(t testing.TB, cfg SSHConfig) *SSH {
	t.Helper()
	s, err := DialSSH(realCtx(t), cfg)
	if err != nil {
		t.Fatalf("DialSSH: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (c *realCluster) knownKey(t *testing.T, keyType string) ssh.PublicKey {
	t.Helper()
	for _, k := range c.known {
		if k.Type() == keyType {
			return k
		}
	}
	t.Skipf("the cluster's known_hosts has no %s key", keyType)
	return nil
}

func (c *realCluster) addr() string {
	return fmt.Sprintf("%s:%d", c.cfg.Host, c.cfg.Port)
}

var acceptedRE = regexp.MustCompile(`Accepted publickey for \S+ from \S+ port (\d+)`)

// acceptedPorts lists the client ports of the logins in the sshd log.
func (c *realCluster) acceptedPorts(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(c.sshdLog)
	if err != nil {
		t.Fatal(err)
	}
	var ports []string
	for _, m := range acceptedRE.FindAllSubmatch(data, -1) {
		ports = append(ports, string(m[1]))
	}
	return ports
}

func TestRealSSHDRun(t *testing.T) {
	c := requireRealCluster(t)
	s := c.dial(t, c.cfg)
	ctx := realCtx(t)

	var out bytes.Buffer
	if err := s.Run(ctx, "sinfo -h -o %D", nil, &out, nil); err != nil {
		t.Fatalf("sinfo: %v", err)
	}
	total := 0
	for _, line := range strings.Fields(out.String()) {
		n, err := strconv.Atoi(line)
		if err != nil {
			t.Fatalf("sinfo printed %q", out.String())
		}
		total += n
	}
	if total == 0 {
		t.Errorf("sinfo counts no nodes: %q", out.String())
	}

	err := s.Run(ctx, "echo to-out; echo why >&2; exit 3", nil, nil, nil)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || ee.Stderr != "why" {
		t.Errorf("exit 3: got %#v", err)
	}
	// Through a helper shell, whose bash reports a signal as 128+n.
	if err := s.Run(ctx, "kill -KILL $$", nil, nil, nil); !errors.As(err, &ee) || ee.Code != 128+9 {
		t.Errorf("killed by a signal: got %v", err)
	}
	if err := s.Run(ctx, "sbatch --definitely-not-an-option", nil, nil, nil); !errors.As(err, &ee) || ee.Code == 0 || ee.Stderr == "" {
		t.Errorf("a failing Slurm command: got %v", err)
	}

	// The command runs under bash whatever root's login shell is.
	out.Reset()
	if err := s.Run(ctx, `[[ -n $BASH_VERSION ]] && printf '%s' "$((6*7))"`, nil, &out, nil); err != nil || out.String() != "42" {
		t.Errorf("bash: %q %v", out.String(), err)
	}

	data := bytes.Repeat([]byte("slurm\n"), 100000)
	out.Reset()
	if err := s.Run(ctx, "wc -c", bytes.NewReader(data), &out, nil); err != nil || strings.TrimSpace(out.String()) != strconv.Itoa(len(data)) {
		t.Errorf("stdin: %q %v", out.String(), err)
	}
}

func TestRealSSHDWriteFile(t *testing.T) {
	c := requireRealCluster(t)
	s := c.dial(t, c.cfg)
	ctx := realCtx(t)

	var out bytes.Buffer
	if err := s.Run(ctx, "mktemp -d", nil, &out, nil); err != nil {
		t.Fatal(err)
	}
	dir := strings.TrimSpace(out.String())
	t.Cleanup(func() { s.Run(context.Background(), "rm -rf "+shellquote.Quote(dir), nil, nil, nil) })

	path := dir + "/job ws/it's/launch.sh"
	data := []byte("#!/bin/bash\n#SBATCH --nodes=2\nsrun hostname\n")
	if err := s.WriteFile(ctx, path, data, 0o750); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := s.Run(ctx, "cat "+shellquote.Quote(path)+" && stat -c %a "+shellquote.Quote(path), nil, &out, nil); err != nil {
		t.Fatal(err)
	}
	if want := string(data) + "750\n"; out.String() != want {
		t.Errorf("read back %q, want %q", out.String(), want)
	}
	out.Reset()
	if err := s.Run(ctx, "ls -A "+shellquote.Quote(dir+"/job ws/it's"), nil, &out, nil); err != nil || out.String() != "launch.sh\n" {
		t.Errorf("folder holds %q (%v), want only launch.sh", out.String(), err)
	}
}

func TestRealSSHDHostKeys(t *testing.T) {
	c := requireRealCluster(t)
	ed := c.knownKey(t, ssh.KeyAlgoED25519)

	t.Run("wrong key", func(t *testing.T) {
		cfg := c.cfg
		cfg.KnownHostsFile = writeKnownHosts(t, c.addr(), testSigner(t, "not-the-cluster-ed25519").PublicKey())
		_, err := DialSSH(realCtx(t), cfg)
		wantUnreachable(t, err, "MISMATCH", ssh.FingerprintSHA256(ed), cfg.KnownHostsFile)
	})

	// OpenSSH would offer ed25519 first; only the RSA key is recorded.
	t.Run("rsa only", func(t *testing.T) {
		cfg := c.cfg
		cfg.KnownHostsFile = writeKnownHosts(t, c.addr(), c.knownKey(t, ssh.KeyAlgoRSA))
		s := c.dial(t, cfg)
		if err := s.Run(realCtx(t), "true", nil, nil, nil); err != nil {
			t.Fatal(err)
		}
	})

	// The fix the error suggests, run as suggested, makes the next dial work.
	t.Run("unknown then ssh-keyscan", func(t *testing.T) {
		cfg := c.cfg
		cfg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(cfg.KnownHostsFile, nil, 0o600)
		_, err := DialSSH(realCtx(t), cfg)
		wantUnreachable(t, err, "unknown host")
		m := regexp.MustCompile("`(ssh-keyscan [^`]+)`").FindStringSubmatch(err.Error())
		if m == nil {
			t.Fatalf("no ssh-keyscan command in %v", err)
		}
		if out, err := exec.Command("bash", "-c", m[1]).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", m[1], err, out)
		}
		c.dial(t, cfg)
	})

	t.Run("accept-new", func(t *testing.T) {
		cfg := c.cfg
		cfg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
		cfg.AcceptNewHostKey = true
		c.dial(t, cfg).Close()
		cfg.AcceptNewHostKey = false
		c.dial(t, cfg)
		got, _ := os.ReadFile(cfg.KnownHostsFile)
		if !strings.HasPrefix(string(got), knownhosts.Normalize(c.addr())+" ") {
			t.Errorf("recorded %q", got)
		}
	})
}

// Many Runs, in parallel and in sequence, share one connection: sshd logs
// one login. Other users of the node may log in meanwhile, so a count that
// is off is measured again before failing; our own extra logins would show
// every time.
func TestRealSSHDOneConnection(t *testing.T) {
	c := requireRealCluster(t)
	var last string
	for try := 1; try <= 3; try++ {
		before := len(c.acceptedPorts(t))
		s := c.dial(t, c.cfg)
		ctx := realCtx(t)
		// The first defaultMaxSessions commands to start wait for each
		// other in a folder on the node: that many sessions are certainly
		// open at once. The rest find the count reached and end at once.
		var out bytes.Buffer
		if err := s.Run(ctx, "mktemp -d", nil, &out, nil); err != nil {
			t.Fatal(err)
		}
		meet := strings.TrimSpace(out.String())
		barrier := fmt.Sprintf(`: > %s/$$; until [ "$(ls %s | wc -l)" -ge %d ]; do sleep 0.05; done`,
			shellquote.Quote(meet), shellquote.Quote(meet), defaultMaxSessions)
		var wg sync.WaitGroup
		for range 24 {
			wg.Go(func() {
				if err := s.Run(ctx, barrier, nil, nil, nil); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for range 5 {
			if err := s.WriteFile(ctx, "/tmp/disagg-transport-test-"+strconv.Itoa(os.Getpid()), []byte("x"), 0o644); err != nil {
				t.Error(err)
			}
		}
		s.Run(ctx, "rm -rf /tmp/disagg-transport-test-"+strconv.Itoa(os.Getpid())+" "+shellquote.Quote(meet), nil, nil, nil)
		ourPort := strconv.Itoa(s.currentConn().client.LocalAddr().(*net.TCPAddr).Port)
		s.Close()
		// sshd's monitor logs "Accepted" before the connection serves any
		// session, so every login that ran one of these commands is in the
		// log by now; ours is waited for all the same, in case the log
		// lags behind.
		var after []string
		waitFor(t, "our login in sshd's log", func() bool {
			after = c.acceptedPorts(t)[before:]
			return slices.Contains(after, ourPort)
		})
		if len(after) == 1 && after[0] == ourPort {
			return
		}
		last = fmt.Sprintf("%d logins during the test (client ports %v; ours %s)", len(after), after, ourPort)
		t.Logf("try %d: %s", try, last)
	}
	t.Errorf("want exactly one login: %s", last)
}

// sshd sends the "signal" request to the session's process group.
func TestRealSSHDCancelKillsRemoteCommand(t *testing.T) {
	c := requireRealCluster(t)
	s := c.dial(t, c.cfg)
	out := newLineWriter() // the command prints the pid; the node is this machine
	ctx, cancel := context.WithCancel(realCtx(t))
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx, "sleep 300 & echo $!; wait", nil, out, nil) }()
	pid := out.pid(t)
	cancel()
	if err := receive(t, errc, "Run to return after cancel"); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v", err)
	}
	waitFor(t, "the remote sleep to die", func() bool { return processGone(pid) })
}

// OpenSSH answers keepalives with "unsupported", which is still an answer;
// a broken connection is re-established by the next Run. The test sends
// the ticks, and the wait for an answer never runs out: only the answer
// itself could kill the connection.
func TestRealSSHDKeepAliveAndReconnect(t *testing.T) {
	c := requireRealCluster(t)
	k := newKeepAliveDriver(t)
	s := c.dial(t, c.cfg)
	for range 3 { // taking the third, the goroutine is done with two
		k.tick(t)
	}
	if s.currentConn().isDead() {
		t.Fatalf("keepalives killed a healthy connection: %v", s.currentConn().cause)
	}
	s.currentConn().client.Conn.Close() // as if the network dropped it
	var out bytes.Buffer
	if err := s.Run(realCtx(t), "echo back", nil, &out, nil); err != nil || out.String() != "back\n" {
		t.Fatalf("%q %v", out.String(), err)
	}
}

// A connection that breaks under a running command is reported, and sshd,
// which leaves a disconnected session's processes running, still does not
// keep this one: its lifeline kills it.
func TestRealSSHDConnectionLost(t *testing.T) {
	c := requireRealCluster(t)
	s := c.dial(t, c.cfg)
	out := newLineWriter()
	errc := make(chan error, 1)
	go func() { errc <- s.Run(realCtx(t), "sleep 300 & echo $!; wait", nil, out, nil) }()
	pid := out.pid(t)
	s.currentConn().client.Conn.Close()
	if err := receive(t, errc, "Run to notice the lost connection"); !errors.Is(err, ErrConnectionLost) {
		t.Errorf("got %v, want ErrConnectionLost", err)
	}
	waitFor(t, "the remote sleep to die", func() bool { return processGone(pid) })
}

// BenchmarkRealSSHDStream is the transport's share of streaming a job log:
// a 256 MiB file read the way Follow reads it (dd in one command, through
// the helper shell) and discarded, against OpenSSH's `ssh host cat` of the
// same file, each on its own established connection. Run it on a quiet
// machine with the test cluster up:
//
//	DISAGG_TESTCLUSTER=1 go test -run XXX -bench RealSSHDStream -benchtime 5x ./internal/transport/
func BenchmarkRealSSHDStream(b *testing.B) {
	c := requireRealCluster(b)
	c.cfg.Logf = nil
	file := filepath.Join(b.TempDir(), "log")
	const size = 256 << 20
	if out, err := exec.Command("dd", "if=/dev/urandom", "of="+file, "bs=1M", "count=256", "status=none").CombinedOutput(); err != nil {
		b.Fatalf("dd: %v %s", err, out)
	}
	cmd := "dd if=" + shellquote.Quote(file) + " bs=1M status=none"
	b.Run("disagg-runner", func(b *testing.B) {
		s := c.dial(b, c.cfg)
		ctx := realCtx(b)
		b.SetBytes(size)
		for b.Loop() {
			var n countingWriter
			if err := s.Run(ctx, cmd, nil, &n, nil); err != nil || n != size {
				b.Fatalf("%d bytes, %v", n, err)
			}
		}
	})
	b.Run("openssh", func(b *testing.B) {
		if _, err := exec.LookPath("ssh"); err != nil {
			b.Skip("no ssh client")
		}
		// One master connection, so that each read is a session on it,
		// as the runner's are.
		sock := filepath.Join(b.TempDir(), "master")
		args := []string{"-p", strconv.Itoa(c.cfg.Port), "-i", c.cfg.KeyFile, "-o", "UserKnownHostsFile=" + c.cfg.KnownHostsFile,
			"-o", "BatchMode=yes", "-o", "ControlPath=" + sock, "-l", c.cfg.User}
		master := exec.Command("ssh", append(args, "-o", "ControlMaster=yes", "-N", c.cfg.Host)...)
		if err := master.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { master.Process.Kill(); master.Wait() })
		for exec.Command("ssh", append(args, "-O", "check", c.cfg.Host)...).Run() != nil {
			if master.ProcessState != nil {
				b.Fatal("the ssh master exited")
			}
			time.Sleep(50 * time.Millisecond)
		}
		// Each read starts the user's shell, which a helper shell's reads
		// do not: its cost, to subtract.
		login := time.Duration(1 << 62)
		for range 3 {
			start := time.Now()
			if err := exec.Command("ssh", append(args, c.cfg.Host, "true")...).Run(); err != nil {
				b.Fatal(err)
			}
			login = min(login, time.Since(start))
		}
		b.SetBytes(size)
		for b.Loop() {
			var n countingWriter
			read := exec.Command("ssh", append(args, c.cfg.Host, cmd)...)
			read.Stdout = &n
			if err := read.Run(); err != nil || n != size {
				b.Fatalf("%d bytes, %v", n, err)
			}
		}
		b.ReportMetric(float64(login.Microseconds())/1000, "login-ms")
	})
}

type countingWriter int64

func (w *countingWriter) Write(p []byte) (int, error) {
	*w += countingWriter(len(p))
	return len(p), nil
}
