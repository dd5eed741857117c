package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/disagg-runner/disagg-runner/internal/shellquote"
)

// testEnv is a server, a user key it accepts and a known_hosts file that
// knows it: the setup every test starts from before breaking something.
type testEnv struct {
	srv   *testServer
	cfg   SSHConfig
	log   *logLines
	known string
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	srv := newTestServer(t)
	srv.authorize(testSigner(t, "user-ed25519").PublicKey())
	log := newLogLines(t)
	known := writeKnownHosts(t, srv.addr, testSigner(t, "host-ed25519").PublicKey())
	return &testEnv{
		srv:   srv,
		log:   log,
		known: known,
		cfg: SSHConfig{
			Host:           "127.0.0.1",
			Port:           srv.port,
			User:           "tester",
			KeyFile:        writeKeyFile(t, "user-ed25519", ""),
			KnownHostsFile: known,
			// No clock may decide a test that is not about it: no
			// keepalive goes out unless the test drives them
			// (keepAliveDriver), and dials and reconnects have all the
			// time a loaded machine needs.
			KeepAliveInterval: time.Hour,
			// These tests sequence commands by their sessions (exec
			// hooks, session counts); helper shells have their own
			// tests (helper_test.go), which turn them back on.
			HelperShells:    -1,
			ReconnectBudget: patience,
			DialTimeout:     patience,
			Logf:            log.logf,
		},
	}
}

func (e *testEnv) dial(t *testing.T) *SSH {
	t.Helper()
	s, err := DialSSH(testCtx(t), e.cfg)
	if err != nil {
		t.Fatalf("DialSSH: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	t.Cleanup(cancel)
	return ctx
}

// logLines collects Logf output, and passes it to t.Logf while the test
// runs (a reconnect can still log after it ended).
type logLines struct {
	mu    sync.Mutex
	t     testing.TB
	done  bool
	lines []string
}

func newLogLines(t testing.TB) *logLines {
	l := &logLines{t: t}
	t.Cleanup(func() {
		l.mu.Lock()
		l.done = true
		l.mu.Unlock()
	})
	return l
}

func (l *logLines) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	line := fmt.Sprintf(format, args...)
	l.lines = append(l.lines, line)
	if !l.done {
		l.t.Log(line)
	}
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// wantUnreachable checks the contract for connect failures: exit code 12,
// one line, and the words that tell the user what happened.
func wantUnreachable(t *testing.T, err error, words ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	t.Logf("error: %v", err)
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("error is not ErrUnreachable: %v", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not mention %q: %v", w, err)
		}
	}
}

func TestSSHRunOutputAndExitCodes(t *testing.T) {
	e := newEnv(t)
	s := e.dial(t)
	ctx := testCtx(t)

	var out bytes.Buffer
	if err := s.Run(ctx, `printf '%s|' "a'b" "$((6*7))"; echo`, nil, &out, nil); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "a'b|42|\n" {
		t.Errorf("stdout %q", got)
	}

	err := s.Run(ctx, "echo to-out; echo first >&2; echo last >&2; exit 3", nil, nil, nil)
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("want *ExitError, got %T %v", err, err)
	}
	if ee.Code != 3 || ee.Stderr != "first\nlast" {
		t.Errorf("got code %d stderr %q", ee.Code, ee.Stderr)
	}

	var stderr bytes.Buffer
	err = s.Run(ctx, "echo oops >&2; exit 7", nil, nil, &stderr)
	if !errors.As(err, &ee) || ee.Code != 7 || ee.Stderr != "" || stderr.String() != "oops\n" {
		t.Errorf("own stderr writer: err %v, buffer %q", err, stderr.String())
	}

	err = s.Run(ctx, "kill -KILL $$", nil, nil, nil)
	if !errors.As(err, &ee) || ee.Code != -1 {
		t.Errorf("killed by a signal: want Code -1, got %v", err)
	}

	// The same writer for both streams is written to from one goroutine
	// at a time (the race detector watches this).
	var both bytes.Buffer
	if err := s.Run(ctx, "for i in $(seq 200); do echo o$i; echo e$i >&2; done", nil, &both, &both); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(both.String(), "\n"); n != 400 {
		t.Errorf("got %d lines from both streams, want 400", n)
	}
}

func TestSSHStdin(t *testing.T) {
	e := newEnv(t)
	s := e.dial(t)
	ctx := testCtx(t)

	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	var out bytes.Buffer
	if err := s.Run(ctx, "sha256sum | cut -c1-64", bytes.NewReader(data), &out, nil); err != nil {
		t.Fatal(err)
	}
	var local bytes.Buffer
	if err := (Local{}).Run(ctx, "sha256sum | cut -c1-64", bytes.NewReader(data), &local, nil); err != nil {
		t.Fatal(err)
	}
	if out.String() != local.String() {
		t.Errorf("remote saw different input: %q vs %q", out.String(), local.String())
	}

	// A command that stops reading early has still succeeded.
	if err := s.Run(ctx, "head -c 1 >/dev/null", bytes.NewReader(data), nil, nil); err != nil {
		t.Errorf("command that ignores most of stdin: %v", err)
	}
	// Without stdin the command sees end of input at once.
	out.Reset()
	if err := s.Run(ctx, "wc -c", nil, &out, nil); err != nil || strings.TrimSpace(out.String()) != "0" {
		t.Errorf("nil stdin: %v %q", err, out.String())
	}
}

func TestSSHHostKeyMismatch(t *testing.T) {
	e := newEnv(t)
	e.cfg.KnownHostsFile = writeKnownHosts(t, e.srv.addr, testSigner(t, "other-ed25519").PublicKey())
	_, err := DialSSH(testCtx(t), e.cfg)
	offered := ssh.FingerprintSHA256(testSigner(t, "host-ed25519").PublicKey())
	wantUnreachable(t, err, "MISMATCH", offered, e.cfg.KnownHostsFile, "tester@"+e.srv.addr, "ssh-keygen -R")
	if e.srv.logins.Load() != 0 {
		t.Error("logged in despite the mismatch")
	}
}

func TestSSHUnknownHostRefused(t *testing.T) {
	e := newEnv(t)
	for name, known := range map[string]string{
		"empty file":   writeKnownHosts(t, e.srv.addr),
		"other host":   writeKnownHosts(t, "10.1.2.3:22", testSigner(t, "host-ed25519").PublicKey()),
		"missing file": filepath.Join(t.TempDir(), "no", "known_hosts"),
	} {
		t.Run(name, func(t *testing.T) {
			before, _ := os.ReadFile(known)
			cfg := e.cfg
			cfg.KnownHostsFile = known
			log := newLogLines(t)
			cfg.Logf = log.logf
			_, err := DialSSH(testCtx(t), cfg)
			offered := ssh.FingerprintSHA256(testSigner(t, "host-ed25519").PublicKey())
			wantUnreachable(t, err, "unknown host", offered, "ssh-keyscan -p "+strconv.Itoa(e.srv.port)+" 127.0.0.1 >> ", "accept-new")
			wantNoRetry(t, log)
			after, _ := os.ReadFile(known)
			if !bytes.Equal(before, after) {
				t.Error("known_hosts changed without accept-new")
			}
		})
	}
}

func TestSSHAcceptNewHostKey(t *testing.T) {
	e := newEnv(t)
	known := filepath.Join(t.TempDir(), "ssh", "known_hosts") // neither file nor folder exists
	e.cfg.KnownHostsFile = known
	e.cfg.AcceptNewHostKey = true
	s := e.dial(t)
	if err := s.Run(testCtx(t), "true", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	data, err := os.ReadFile(known)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("[127.0.0.1]:%d ssh-ed25519 ", e.srv.port)
	if !strings.HasPrefix(string(data), want) || strings.Count(string(data), "\n") != 1 {
		t.Errorf("known_hosts holds %q, want one line starting %q", data, want)
	}

	// Recorded now: a strict dial succeeds and adds nothing.
	e.cfg.AcceptNewHostKey = false
	e.dial(t).Close()
	if again, _ := os.ReadFile(known); !bytes.Equal(again, data) {
		t.Errorf("known_hosts changed on the second dial: %q", again)
	}

	// The server's key changes: accept-new must not take it.
	e.srv.setHostKeys(testSigner(t, "host2-ed25519"))
	e.cfg.AcceptNewHostKey = true
	_, err = DialSSH(testCtx(t), e.cfg)
	wantUnreachable(t, err, "MISMATCH", ssh.FingerprintSHA256(testSigner(t, "host2-ed25519").PublicKey()))
	if again, _ := os.ReadFile(known); !bytes.Equal(again, data) {
		t.Errorf("a changed key was written to known_hosts: %q", again)
	}
}

// A server with several host keys presents the one the client prefers.
// With the library's default preference that is ECDSA, and a known_hosts
// holding only the RSA key would look like a changed key.
func TestSSHKnownHostsPicksAlgorithm(t *testing.T) {
	all := []ssh.Signer{testSigner(t, "host-ecdsa"), testSigner(t, "host-ed25519"), testSigner(t, "host-rsa")}
	for _, only := range []string{"host-rsa", "host-ecdsa", "host-ed25519"} {
		t.Run(only, func(t *testing.T) {
			e := newEnv(t)
			e.srv.setHostKeys(all...)
			e.cfg.KnownHostsFile = writeKnownHosts(t, e.srv.addr, testSigner(t, only).PublicKey())
			s := e.dial(t)
			if err := s.Run(testCtx(t), "true", nil, nil, nil); err != nil {
				t.Fatal(err)
			}
		})
	}

	// The quirk itself, shown with the library alone: its default choice
	// against an RSA-only known_hosts is a "mismatch".
	e := newEnv(t)
	e.srv.setHostKeys(all...)
	known := writeKnownHosts(t, e.srv.addr, testSigner(t, "host-rsa").PublicKey())
	plan, err := (&knownHostsFile{path: known}).forAddr(e.srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ssh.Dial("tcp", e.srv.addr, &ssh.ClientConfig{
		User:            "tester",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(testSigner(t, "user-ed25519"))},
		HostKeyCallback: plan.callback,
	})
	if err == nil || !strings.Contains(err.Error(), "MISMATCH") {
		t.Errorf("expected the default algorithms to hit a mismatch, got %v", err)
	}
}

// accept-new records the key OpenSSH would: ed25519 before ecdsa and rsa.
func TestSSHAcceptNewPrefersEd25519(t *testing.T) {
	e := newEnv(t)
	e.srv.setHostKeys(testSigner(t, "host-rsa"), testSigner(t, "host-ecdsa"), testSigner(t, "host-ed25519"))
	e.cfg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
	e.cfg.AcceptNewHostKey = true
	e.dial(t)
	data, _ := os.ReadFile(e.cfg.KnownHostsFile)
	if fields := strings.Fields(string(data)); len(fields) != 3 || fields[1] != ssh.KeyAlgoED25519 {
		t.Errorf("recorded %q, want the ed25519 key", data)
	}
}

func TestHostKeyAlgorithmsOrder(t *testing.T) {
	k := func(name string) knownhosts.KnownKey {
		return knownhosts.KnownKey{Key: testSigner(t, name).PublicKey()}
	}
	got := hostKeyAlgorithms([]knownhosts.KnownKey{k("host-rsa"), k("host-ed25519"), k("host-rsa"), k("host-ecdsa")})
	want := []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// When the server no longer has a key of the recorded type, the error says
// so rather than a bare "no common algorithm".
func TestSSHKnownKeyTypeGone(t *testing.T) {
	e := newEnv(t)
	e.cfg.KnownHostsFile = writeKnownHosts(t, e.srv.addr, testSigner(t, "host-rsa").PublicKey())
	_, err := DialSSH(testCtx(t), e.cfg)
	wantUnreachable(t, err, "rsa-sha2-512", "ssh-ed25519", "ssh-keygen -R")
}

func TestSSHEncryptedKey(t *testing.T) {
	e := newEnv(t)
	e.srv.authorize(testSigner(t, "user-rsa").PublicKey())
	const secret = "correct horse battery staple"
	e.cfg.KeyFile = writeKeyFile(t, "user-rsa", secret)

	_, err := DialSSH(testCtx(t), e.cfg)
	wantUnreachable(t, err, "encrypted", e.cfg.KeyFile)

	e.cfg.KeyPassphrase = "wrong " + secret
	_, err = DialSSH(testCtx(t), e.cfg)
	wantUnreachable(t, err, "wrong passphrase", e.cfg.KeyFile)
	if strings.Contains(err.Error(), secret) {
		t.Error("the passphrase is in the error")
	}

	e.cfg.KeyPassphrase = secret
	s := e.dial(t)
	if err := s.Run(testCtx(t), "true", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(e.log.String(), secret) {
		t.Error("the passphrase was logged")
	}
}

// TestSSHInputFilesNotRegular: a key or known_hosts file that is a FIFO
// or a device is refused at once, never read: a FIFO blocked the dial for
// good, /dev/zero ran out of memory.
func TestSSHInputFilesNotRegular(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit func(*SSHConfig, string)
		want string
	}{
		{"key", func(c *SSHConfig, p string) { c.KeyFile = p }, "cannot read SSH key file"},
		{"known_hosts", func(c *SSHConfig, p string) { c.KnownHostsFile = p }, "cannot read known_hosts file"},
	} {
		for _, p := range []string{fifo, "/dev/zero"} {
			e := newEnv(t)
			c.edit(&e.cfg, p)
			done := make(chan error, 1)
			go func() {
				_, err := DialSSH(testCtx(t), e.cfg)
				done <- err
			}()
			select {
			case err := <-done:
				wantUnreachable(t, err, c.want, p, "not a regular file")
			case <-time.After(30 * time.Second): // it would block for good
				t.Fatalf("%s %s: the dial blocked", c.name, p)
			}
		}
	}
}

func TestSSHAgentAuth(t *testing.T) {
	e := newEnv(t)
	t.Setenv("HOME", t.TempDir()) // no ~/.ssh/id_* to fall back on
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: testPrivateKey(t, "agent-ed25519")}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				agent.ServeAgent(keyring, c)
			}()
		}
	}()
	e.cfg.AgentSocket = sock
	e.cfg.KeyFile = ""

	// The agent's key is not authorized yet: the failure names what was offered.
	_, err = DialSSH(testCtx(t), e.cfg)
	wantUnreachable(t, err, "authentication failed", "ssh-agent", "authorized_keys")

	e.srv.authorize(testSigner(t, "agent-ed25519").PublicKey())
	s := e.dial(t)
	if err := s.Run(testCtx(t), "true", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestSSHDefaultKeyFiles(t *testing.T) {
	e := newEnv(t)
	home := t.TempDir()
	t.Setenv("HOME", home)
	e.cfg.AgentSocket = ""
	e.cfg.KeyFile = ""

	_, err := DialSSH(testCtx(t), e.cfg)
	wantUnreachable(t, err, "no SSH key")

	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	key, _ := os.ReadFile(writeKeyFile(t, "user-ed25519", ""))
	os.WriteFile(filepath.Join(home, ".ssh", "id_ed25519"), key, 0o600)
	e.dial(t)
}

func TestSSHAuthRefused(t *testing.T) {
	e := newEnv(t)
	e.srv.refuseAuth.Store(true)
	_, err := DialSSH(testCtx(t), e.cfg)
	wantUnreachable(t, err, "tester@"+e.srv.addr, "authentication failed", e.cfg.KeyFile)
	wantNoRetry(t, e.log)
}

// wantNoRetry checks that a dial gave up at its first attempt: every retry
// is logged before it is waited for.
func wantNoRetry(t *testing.T, log *logLines) {
	t.Helper()
	if strings.Contains(log.String(), "(attempt 2)") {
		t.Errorf("retried although waiting cannot help:\n%s", log)
	}
}

func TestSSHMaxSessions(t *testing.T) {
	e := newEnv(t)
	e.cfg.MaxSessions = 3
	// The first three commands to arrive wait for each other before they
	// start: three sessions are certainly open at once, whatever the
	// machine's speed, and a fourth would show in maxOpen.
	var arrived atomic.Int32
	three := make(chan struct{})
	e.srv.setBeforeExec(func() {
		if arrived.Add(1) == 3 {
			close(three)
		}
		<-three
	})
	s := e.dial(t)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := range 30 {
		wg.Go(func() {
			var out bytes.Buffer
			if err := s.Run(ctx, "echo "+strconv.Itoa(i), nil, &out, nil); err != nil {
				errs <- err
			} else if out.String() != strconv.Itoa(i)+"\n" {
				errs <- fmt.Errorf("run %d printed %q", i, out.String())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if m := e.srv.maxOpen.Load(); m != 3 {
		t.Errorf("at most %d sessions were open at once, want exactly 3", m)
	}
	if n := e.srv.logins.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// sshd refuses a session for a moment when its MaxSessions slots are not
// yet freed from sessions the client has already closed; that is waited
// out on the same connection, and a server that keeps refusing is reported.
func TestSSHSessionRefusedForAMoment(t *testing.T) {
	e := newEnv(t)
	s := e.dial(t)
	var slept []time.Duration
	s.hooks = &hooks{sleep: func(ctx context.Context, d time.Duration) error {
		slept = append(slept, d)
		return ctx.Err()
	}}
	ctx := testCtx(t)

	e.srv.refuseSessions.Store(3)
	var out bytes.Buffer
	if err := s.Run(ctx, "echo ok", nil, &out, nil); err != nil {
		t.Fatalf("refused 3 times, then open: %v", err)
	}
	if out.String() != "ok\n" {
		t.Errorf("output %q", out.String())
	}
	if n := e.srv.refused.Load(); n != 3 {
		t.Errorf("server refused %d opens, want 3", n)
	}
	if want := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}; !slices.Equal(slept, want) {
		t.Errorf("waited %v between tries, want %v", slept, want)
	}

	e.srv.refuseSessions.Store(1000)
	err := s.Run(ctx, "echo never", nil, nil, nil)
	wantUnreachable(t, err, "cannot open a session", "refused 9 times", "open failed")
	if n := e.srv.execs.Load(); n != 1 {
		t.Errorf("%d commands ran, want 1", n)
	}
	if n := e.srv.logins.Load(); n != 1 {
		t.Errorf("%d connections, want 1: a refused session is no reason to reconnect", n)
	}
}

// A Run waiting for a session slot gives up when its ctx ends.
func TestSSHSessionWaitHonoursContext(t *testing.T) {
	e := newEnv(t)
	e.cfg.MaxSessions = 1
	s := e.dial(t)
	// The first Run holds the only session until the test lets it go.
	holdCtx, release := context.WithCancel(testCtx(t))
	started := newLineWriter()
	held := make(chan error, 1)
	go func() { held <- s.Run(holdCtx, "echo started; exec sleep 300", nil, started, nil) }()
	started.line(t)

	// The second Run is cancelled once it waits for the session: it has
	// looked at ctx.Done, which Run does first when it waits for one.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waiting := &doneWatch{Context: ctx, asked: make(chan struct{})}
	errc := make(chan error, 1)
	go func() { errc <- s.Run(waiting, "true", nil, nil, nil) }()
	waitClosed(t, waiting.asked, "the second Run to wait for a session")
	cancel()
	if err := receive(t, errc, "the second Run to give up"); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if n := e.srv.execs.Load(); n != 1 {
		t.Errorf("%d commands ran, want only the first", n)
	}
	release()
	receive(t, held, "the first Run to end")
}

// doneWatch is a context that tells when Done was first called.
type doneWatch struct {
	context.Context
	once  sync.Once
	asked chan struct{}
}

func (d *doneWatch) Done() <-chan struct{} {
	d.once.Do(func() { close(d.asked) })
	return d.Context.Done()
}

// A command after a drop runs on a new connection, whether it gets a
// session of its own (the drop is found opening it) or goes to an idle
// helper shell (the drop is found by the ping before its reuse).
func TestSSHReconnectBetweenCommands(t *testing.T) {
	for _, helpers := range []bool{false, true} {
		t.Run(fmt.Sprintf("helpers=%v", helpers), func(t *testing.T) {
			e := newEnv(t)
			if helpers {
				e.cfg.HelperShells = 0             // the default
				e.cfg.KeepAliveInterval = patience // the ping before reuse waits this long
			}
			s := e.dial(t)
			ctx := testCtx(t)
			if err := s.Run(ctx, "true", nil, nil, nil); err != nil {
				t.Fatal(err)
			}
			e.srv.dropAll()
			var out bytes.Buffer
			if err := s.Run(ctx, "echo again", nil, &out, nil); err != nil {
				t.Fatalf("Run after the drop: %v", err)
			}
			if out.String() != "again\n" {
				t.Errorf("stdout %q", out.String())
			}
			if n := e.srv.logins.Load(); n != 2 {
				t.Errorf("%d connections, want exactly 2", n)
			}
		})
	}
}

// Many callers finding the connection dead share one reconnect.
func TestSSHConcurrentCallersReconnectOnce(t *testing.T) {
	e := newEnv(t)
	s := e.dial(t)
	ctx := testCtx(t)
	e.srv.dropAll()
	waitClosed(t, s.currentConn().dead, "the client to notice the drop")
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := s.Run(ctx, "true", nil, nil, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := e.srv.logins.Load(); n != 2 {
		t.Errorf("%d connections, want exactly 2", n)
	}
}

// The test sends the keepalive ticks itself and decides when the wait for
// an answer has run out: how fast the server answers does not matter.
func TestSSHKeepAliveFailureMarksDead(t *testing.T) {
	e := newEnv(t)
	e.srv.ignoreKeepAlivesFrom.Store(3)
	k := newKeepAliveDriver(t)
	s := e.dial(t)
	conn := s.currentConn()
	// The goroutine takes a tick only once done with the last keepalive:
	// taking the third, it has had the first two answered. The third goes
	// out and is left unanswered.
	for range 3 {
		k.tick(t)
	}
	if conn.isDead() {
		t.Fatalf("dead although keepalives are answered: %v", conn.cause)
	}
	// The wait for the third answer runs out.
	for range 2 {
		receive(t, k.expiries, "a keepalive")
	}
	receive(t, k.expiries, "the third keepalive") <- time.Time{}
	waitClosed(t, conn.dead, "the unanswered keepalive to kill the connection")
	e.srv.ignoreKeepAlivesFrom.Store(0)
	if err := s.Run(testCtx(t), "true", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if n := e.srv.logins.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	if !strings.Contains(e.log.String(), "keepalive") {
		t.Errorf("the log does not say why it reconnected:\n%s", e.log)
	}
}

func TestSSHConnectionLostDuringCommand(t *testing.T) {
	e := newEnv(t)
	s := e.dial(t)
	ctx := testCtx(t)
	out := newLineWriter()
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx, "sleep 30 & echo $!; wait", nil, out, nil) }()
	pid := out.pid(t)
	e.srv.dropAll()
	err := receive(t, errc, "Run to notice the lost connection")
	if !errors.Is(err, ErrConnectionLost) {
		t.Errorf("got %v, want ErrConnectionLost", err)
	}
	wantUnreachable(t, err, "sleep 30")
	// Nothing is left running on the node, and nothing is repeated behind
	// the caller's back; the next Run reconnects.
	waitFor(t, "the orphaned command to die", func() bool { return processGone(pid) })
	if n := e.srv.execs.Load(); n != 1 {
		t.Errorf("%d commands ran, want 1", n)
	}
	if err := s.Run(ctx, "true", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestSSHUnreachableAfterBudget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now: connection refused

	e := newEnv(t)
	e.cfg.Port = port
	e.cfg.ReconnectBudget = time.Second
	clock := useStepClock(t)
	_, err = DialSSH(testCtx(t), e.cfg)
	// Attempts at 0, 0.5 s (the first backoff) and 1 s (what was left of
	// the budget); then the budget is spent.
	wantUnreachable(t, err, fmt.Sprintf("tester@127.0.0.1:%d", port), "refused", "after 3 attempts in 1s")
	if slept := clock.slept(); slept != time.Second {
		t.Errorf("waited %s between attempts, want the 1s budget", slept)
	}
	for _, want := range []string{"(attempt 2) in 500ms", "(attempt 3) in 500ms"} {
		if !strings.Contains(e.log.String(), want) {
			t.Errorf("no %q in the log:\n%s", want, e.log)
		}
	}
}

func TestSSHReconnectGivesUp(t *testing.T) {
	e := newEnv(t)
	e.cfg.ReconnectBudget = 700 * time.Millisecond
	clock := useStepClock(t)
	s := e.dial(t)
	e.srv.close() // the server is gone for good
	err := s.Run(testCtx(t), "true", nil, nil, nil)
	wantUnreachable(t, err, "tester@"+e.srv.addr, "refused", "after 3 attempts in 700ms")
	if slept := clock.slept(); slept != 700*time.Millisecond {
		t.Errorf("waited %s between attempts, want the 700ms budget", slept)
	}
}

func TestSSHHandshakeTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepts and never speaks
		}
	}()
	e := newEnv(t)
	e.cfg.Port = ln.Addr().(*net.TCPAddr).Port
	e.cfg.DialTimeout = 200 * time.Millisecond
	e.cfg.ReconnectBudget = 300 * time.Millisecond
	_, err = DialSSH(testCtx(t), e.cfg)
	wantUnreachable(t, err, "no SSH handshake within 200ms")
}

// A cancelled command is killed on the node: through sshd's "signal", or
// the lifeline where sshd refuses signals (root), or, in a helper shell,
// with the helper (the next command then gets a new one).
func TestSSHCancelKillsRemoteCommand(t *testing.T) {
	for _, c := range []struct{ signals, helpers bool }{{true, false}, {false, false}, {false, true}} {
		t.Run(fmt.Sprintf("signals=%v,helpers=%v", c.signals, c.helpers), func(t *testing.T) {
			e := newEnv(t)
			e.srv.ignoreSignals.Store(!c.signals)
			if c.helpers {
				e.cfg.HelperShells = 0 // the default
			}
			s := e.dial(t)
			out := newLineWriter()
			ctx, cancel := context.WithCancel(testCtx(t))
			errc := make(chan error, 1)
			go func() {
				errc <- s.Run(ctx, "sleep 300 & echo $!; wait", nil, out, nil)
			}()
			pid := out.pid(t)
			cancel()
			if err := receive(t, errc, "Run to return after cancel"); !errors.Is(err, context.Canceled) {
				t.Errorf("got %v, want context.Canceled", err)
			}
			waitFor(t, "the remote sleep to die", func() bool { return processGone(pid) })
			// The connection survives a cancelled command.
			if err := s.Run(testCtx(t), "true", nil, nil, nil); err != nil {
				t.Fatal(err)
			}
			if n := e.srv.logins.Load(); n != 1 {
				t.Errorf("%d connections, want 1", n)
			}
			if n := e.srv.execs.Load(); c.helpers && n != 2 {
				t.Errorf("%d helpers started, want 2", n)
			}
		})
	}
}

// What a command deliberately leaves running survives its normal end, as
// under Local.
func TestSSHBackgroundProcessSurvivesNormalExit(t *testing.T) {
	e := newEnv(t)
	s := e.dial(t)
	var out bytes.Buffer
	if err := s.Run(testCtx(t), "nohup sleep 60 >/dev/null 2>&1 & echo $!", nil, &out, nil); err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("printed %q", out.String())
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	// The lifeline's watcher is in the command's process group too. Once
	// it has seen the session end and exited, it can kill nothing more:
	// whatever the sleep's fate, it has been decided.
	pgid := processGroup(pid)
	waitFor(t, "the lifeline watcher to exit", func() bool {
		return !slices.ContainsFunc(groupMembers(pgid), func(p int) bool { return p != pid })
	})
	if processGone(pid) {
		t.Error("the background process was killed after the command ended normally")
	}
}

func TestSSHWriteFile(t *testing.T) {
	e := newEnv(t)
	s := e.dial(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "new folder", "it's $HOME", "launch.sh")

	data := []byte("#!/bin/bash\necho hi\n")
	if err := s.WriteFile(ctx, path, data, 0o750); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %q, %v", got, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o750 {
		t.Errorf("mode %o", st.Mode().Perm())
	}
	var out bytes.Buffer
	if err := s.Run(ctx, "cat "+shellquote.Quote(path), nil, &out, nil); err != nil || out.String() != string(data) {
		t.Errorf("cat over ssh: %q %v", out.String(), err)
	}

	// Overwrite, and an empty file.
	if err := s.WriteFile(ctx, path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Size() != 0 || st.Mode().Perm() != 0o644 {
		t.Errorf("after overwrite: size %d mode %o", st.Size(), st.Mode().Perm())
	}
	assertNoTempFiles(t, filepath.Dir(path))

	// A failure names the file and carries the remote complaint.
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, nil, 0o644)
	err = s.WriteFile(ctx, filepath.Join(blocker, "x"), data, 0o644)
	if err == nil || !strings.Contains(err.Error(), "write "+filepath.Join(blocker, "x")) || !strings.Contains(err.Error(), "mkdir: cannot create directory") {
		t.Errorf("got %v", err)
	}
}

// The stream breaks part way: the remote cat sees end of input and exits
// 0, and only the size check keeps the partial file from replacing the
// target.
func TestSSHWriteFileAtomicOnBrokenStream(t *testing.T) {
	e := newEnv(t)
	s := e.dial(t)
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "launch.sh")
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.srv.dropAfterStdin.Store(256 << 10)
	err := s.WriteFile(ctx, path, bytes.Repeat([]byte("x"), 4<<20), 0o644)
	if !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("got %v, want ErrConnectionLost", err)
	}
	// The remote script goes on without us; let it finish.
	waitFor(t, "the temporary file to be removed", func() bool { return countTempFiles(filepath.Dir(path)) == 0 })
	if got, _ := os.ReadFile(path); string(got) != "old\n" {
		t.Errorf("target holds %d bytes, want the old content", len(got))
	}

	// WriteFile is safe to repeat, and the next call reconnects.
	e.srv.dropAfterStdin.Store(0)
	if err := s.WriteFile(ctx, path, []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "new\n" {
		t.Errorf("target holds %q", got)
	}
}

func TestSSHJumpHost(t *testing.T) {
	e := newEnv(t)
	jump := newTestServer(t, testSigner(t, "jump-ed25519"))
	jump.allowForwarding = true
	jump.authorize(testSigner(t, "user-ed25519").PublicKey())
	e.cfg.JumpHost = "tester@127.0.0.1:" + strconv.Itoa(jump.port)

	// The jump host's key must be known too.
	_, err := DialSSH(testCtx(t), e.cfg)
	wantUnreachable(t, err, "unknown host", jump.addr, "jump host for tester@"+e.srv.addr)

	appendKnownHosts(t, e.known, jump.addr, testSigner(t, "jump-ed25519").PublicKey())
	s := e.dial(t)
	var out bytes.Buffer
	if err := s.Run(testCtx(t), "echo through", nil, &out, nil); err != nil || out.String() != "through\n" {
		t.Fatalf("%q %v", out.String(), err)
	}
	if !strings.Contains(s.String(), "via tester@"+jump.addr) {
		t.Errorf("String() = %q", s.String())
	}
	if j, f, l := jump.logins.Load(), jump.forwards.Load(), e.srv.logins.Load(); j != 1 || f != 1 || l != 1 {
		t.Errorf("jump logins %d, forwards %d, target logins %d; want 1 each", j, f, l)
	}
	if jump.execs.Load() != 0 {
		t.Error("the command ran on the jump host")
	}

	// Losing the jump host loses the target connection; the next Run
	// goes through a new jump connection.
	jump.dropAll()
	if err := s.Run(testCtx(t), "true", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if j, l := jump.logins.Load(), e.srv.logins.Load(); j != 2 || l != 2 {
		t.Errorf("after the jump host dropped: jump logins %d, target logins %d; want 2 each", j, l)
	}
}

func TestSSHClose(t *testing.T) {
	e := newEnv(t)
	s := e.dial(t)
	waitFor(t, "the login", func() bool { return e.srv.logins.Load() == 1 })
	s.Close()
	if err := s.Run(testCtx(t), "true", nil, nil, nil); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Run after Close: %v", err)
	}
	if n := e.srv.logins.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (no reconnect after Close)", n)
	}
}

func TestParseJumpHost(t *testing.T) {
	for spec, want := range map[string]string{
		"bastion":             "me@bastion:22",
		"ops@bastion:2200":    "ops@bastion:2200",
		"bastion:2200":        "me@bastion:2200",
		"ops@[::1]:2200":      "ops@[::1]:2200",
		"[::1]":               "me@[::1]:22",
		"a@b@bastion.example": "a@b@bastion.example:22",
	} {
		e, err := parseJumpHost(spec, "me")
		if err != nil || e.String() != want {
			t.Errorf("%q: got %v %v, want %s", spec, e, err, want)
		}
	}
	for _, bad := range []string{"", "ops@", "host:port", "host:0"} {
		if _, err := parseJumpHost(bad, "me"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// CheckJumpHost judges the form alone (the user defaults later).
	for _, ok := range []string{"bastion", "bastion:2200", "ops@bastion:65535", "[::1]"} {
		if err := CheckJumpHost(ok); err != nil {
			t.Errorf("CheckJumpHost(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"user@", "@host", "host:abc", "host:70000", "host:", "host:-1", ":22"} {
		if err := CheckJumpHost(bad); err == nil {
			t.Errorf("CheckJumpHost(%q) accepted", bad)
		}
	}
}

func (s *SSH) currentConn() *sshConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// patience bounds every wait in these tests. It only turns a hang into a
// failure (nothing is timed with it), so it is generous: a loaded machine
// must not reach it.
const patience = 2 * time.Minute

// waitFor polls cond until it holds: for states nothing announces, such
// as a process gone.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitClosed waits for ch to be closed.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(patience):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// receive waits for the value ch delivers.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(patience):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// lineWriter is a command's stdout that hands on the first line the
// command prints: the test learns the moment the command got that far.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	sent  bool
	first chan string
}

func newLineWriter() *lineWriter { return &lineWriter{first: make(chan string, 1)} }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if line, _, ok := strings.Cut(w.buf.String(), "\n"); ok && !w.sent {
		w.sent = true
		w.first <- line
	}
	return len(p), nil
}

// line waits for the first line.
func (w *lineWriter) line(t *testing.T) string {
	t.Helper()
	return receive(t, w.first, "the command's first line")
}

// pid waits for the first line, a process id (`cmd & echo $!`).
func (w *lineWriter) pid(t *testing.T) int {
	t.Helper()
	line := w.line(t)
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("the command printed %q, not a pid", line)
	}
	return pid
}

// useHooks makes the SSH transports this test dials use h.
func useHooks(t *testing.T, h *hooks) {
	old := testHooks
	testHooks = h
	t.Cleanup(func() { testHooks = old })
}

// stepClock is a clock for dialWithRetry that moves only when it waits
// between attempts, and then at once: a ReconnectBudget is spent in no
// time and exactly, however long the attempts themselves take.
type stepClock struct {
	mu    sync.Mutex
	now   time.Time
	total time.Duration
}

func useStepClock(t *testing.T) *stepClock {
	c := &stepClock{now: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	useHooks(t, &hooks{now: c.Now, sleep: c.Sleep})
	return c
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.total += d
	return nil
}

// slept is the time waited in all.
func (c *stepClock) slept() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// keepAliveDriver sends a connection's keepalive ticks, and decides when
// the wait for an answer runs out: never, unless the test sends on that
// keepalive's channel in expiries.
type keepAliveDriver struct {
	ticks    chan time.Time
	expiries chan chan time.Time // one per keepalive, in the order they went out
}

func newKeepAliveDriver(t *testing.T) *keepAliveDriver {
	k := &keepAliveDriver{ticks: make(chan time.Time), expiries: make(chan chan time.Time, 100)}
	useHooks(t, &hooks{keepAliveTick: k.ticks, pingExpired: k.expired})
	return k
}

func (k *keepAliveDriver) expired(time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	select {
	case k.expiries <- ch:
	default: // nobody will want it
	}
	return ch
}

// tick sends one tick; it is taken once the connection's keepalive
// goroutine is done with the previous one.
func (k *keepAliveDriver) tick(t *testing.T) {
	t.Helper()
	select {
	case k.ticks <- time.Time{}:
	case <-time.After(patience):
		t.Fatal("the keepalive goroutine took no tick")
	}
}

// processGroup returns the process group of pid (0 when it is gone).
func processGroup(pid int) int {
	f := procStat(pid)
	if len(f) < 3 {
		return 0
	}
	pgid, _ := strconv.Atoi(f[2])
	return pgid
}

// groupMembers lists the processes of group pgid that have not exited
// (zombies count as exited).
func groupMembers(pgid int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := procStat(pid); len(f) >= 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procStat returns the fields of /proc/<pid>/stat after the command name:
// state, parent pid, process group, ...
func procStat(pid int) []string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(stat[i+1:]))
}

// processGone reports whether pid has exited. A zombie counts as gone: in
// a container nobody may reap an orphan.
func processGone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z'
}

func countTempFiles(dir string) int {
	entries, _ := os.ReadDir(dir)
	n := 0
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			n++
		}
	}
	return n
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	if n := countTempFiles(dir); n != 0 {
		t.Errorf("%d temporary files left in %s", n, dir)
	}
}
