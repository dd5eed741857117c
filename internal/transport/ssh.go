package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/disagg-runner/disagg-runner/internal/shellquote"
)

// ErrConnectionLost is in the chain of the error Run and WriteFile return
// when the connection broke while the command was running: it may or may
// not have finished on the node. Nothing is repeated on the caller's behalf;
// the caller knows whether its command is safe to run again (WriteFile always
// is). The error is also ErrUnreachable.
var ErrConnectionLost = errors.New("connection lost while the command was running")

// SSHConfig says how to reach the login node. Zero values take the defaults
// named on each field.
type SSHConfig struct {
	Host string
	Port int    // default 22
	User string // default the current user

	// KeyFile is the private key to log in with; when set, it is the only
	// key offered (so that a full agent cannot use up the server's
	// MaxAuthTries before it). When empty: the ssh-agent at AgentSocket,
	// then ~/.ssh/id_ed25519, id_ecdsa and id_rsa, those that exist.
	KeyFile       string
	KeyPassphrase string // for an encrypted KeyFile (or encrypted default keys)
	// AgentSocket is the ssh-agent's socket (the caller's SSH_AUTH_SOCK);
	// empty means no agent.
	AgentSocket string

	// KnownHostsFile verifies the host key; default ~/.ssh/known_hosts.
	// Verification cannot be turned off.
	KnownHostsFile string
	// AcceptNewHostKey appends the key of a host the file does not know yet
	// (OpenSSH's StrictHostKeyChecking=accept-new). A changed key is
	// refused regardless.
	AcceptNewHostKey bool

	JumpHost string // [user@]host[:port]; user defaults to User, port to 22

	KeepAliveInterval time.Duration // default 15s
	ReconnectBudget   time.Duration // how long to keep trying; default 2m
	MaxSessions       int           // concurrent sessions; default 8 (sshd allows 10)
	DialTimeout       time.Duration // per TCP connect and per handshake; default 10s

	// HelperShells is how many long-lived shells may run commands that
	// read no input (see helperScript); default 2, at most half of
	// MaxSessions; negative: none, every command gets a session.
	HelperShells int

	// Logf, when set, receives progress lines such as reconnect attempts.
	Logf func(format string, args ...any)
	// Debugf, when set, receives a line per remote step with where its
	// time went (session open, command until exit).
	Debugf func(format string, args ...any)
}

const (
	defaultKeepAlive   = 15 * time.Second
	defaultBudget      = 2 * time.Minute
	defaultMaxSessions = 8
	defaultDialTimeout = 10 * time.Second

	firstBackoff = 500 * time.Millisecond
	maxBackoff   = 10 * time.Second

	// keepAliveMisses is how many intervals a keepalive reply may take
	// before the connection counts as dead (OpenSSH's ServerAliveCountMax):
	// a reply can queue behind a large upload on a slow link.
	keepAliveMisses = 3

	// cancelGrace is how long a cancelled Run waits for the server to
	// acknowledge the end of the session before returning anyway.
	cancelGrace = 2 * time.Second
)

// SSH is a Transport over one SSH connection to the login node. Sessions
// are multiplexed over that connection, at most MaxSessions at a time; the
// connection is kept alive and re-established when it drops. It is safe for
// concurrent use.
type SSH struct {
	cfg   SSHConfig
	addr  string // host:port as dialled and as known_hosts is searched
	name  string // user@host:port, for messages
	jump  *endpoint
	auth  *authSource
	hosts *knownHostsFile

	sessions chan struct{} // a token per open session
	helpers  helpers

	// ctx ends at Close; it bounds reconnects, which run on their own so
	// that one caller giving up does not cancel them for the others.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	conn   *sshConn
	redial *redial // the reconnect in progress, shared by all who wait for it
	closed bool

	hooks *hooks // nil but in tests
}

var _ Transport = (*SSH)(nil)

// endpoint is one host to log in to.
type endpoint struct {
	user, addr string
}

func (e *endpoint) String() string { return e.user + "@" + e.addr }

type redial struct {
	done chan struct{}
	conn *sshConn
	err  error
}

// DialSSH connects to cfg.Host and returns once logged in. Transient
// failures (refused, timed out, reset) are retried with backoff for up to
// ReconnectBudget; failures that waiting cannot fix (unknown or changed host
// key, authentication, an unknown host name, an unreadable key) are returned
// at once. All of them are ErrUnreachable.
func DialSSH(ctx context.Context, cfg SSHConfig) (*SSH, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &SSH{
		cfg:      cfg,
		addr:     net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		sessions: make(chan struct{}, cfg.MaxSessions),
		hosts:    &knownHostsFile{path: cfg.KnownHostsFile, acceptNew: cfg.AcceptNewHostKey, logf: cfg.Logf},
		hooks:    testHooks,
	}
	s.name = cfg.User + "@" + s.addr
	s.helpers.max = min(cfg.HelperShells, cfg.MaxSessions/2)
	if cfg.JumpHost != "" {
		if s.jump, err = parseJumpHost(cfg.JumpHost, cfg.User); err != nil {
			return nil, Unreachable(err)
		}
	}
	if s.auth, err = newAuthSource(cfg); err != nil {
		return nil, Unreachable(fmt.Errorf("ssh %s: %w", s.name, err))
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	c, err := s.dialWithRetry(ctx, "retrying")
	if err != nil {
		s.cancel()
		return nil, err
	}
	s.conn = c
	return s, nil
}

func (cfg SSHConfig) withDefaults() (SSHConfig, error) {
	if cfg.Host == "" {
		return cfg, unreachablef("ssh: no host given")
	}
	if cfg.Port == 0 {
		cfg.Port = 22
	}
	if cfg.User == "" {
		if u, err := user.Current(); err == nil && u.Username != "" {
			cfg.User = u.Username
		} else {
			return cfg, unreachablef("ssh %s: cannot tell the current user name; set the SSH user", cfg.Host)
		}
	}
	if cfg.KnownHostsFile == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return cfg, unreachablef("ssh %s: no known_hosts file given and no home folder to find ~/.ssh/known_hosts in", cfg.Host)
		}
		cfg.KnownHostsFile = filepath.Join(home, ".ssh", "known_hosts")
	}
	if cfg.KeepAliveInterval <= 0 {
		cfg.KeepAliveInterval = defaultKeepAlive
	}
	if cfg.ReconnectBudget <= 0 {
		cfg.ReconnectBudget = defaultBudget
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = defaultMaxSessions
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	switch {
	case cfg.HelperShells == 0:
		cfg.HelperShells = defaultHelperShells
	case cfg.HelperShells < 0:
		cfg.HelperShells = 0
	}
	if cfg.Debugf == nil {
		cfg.Debugf = func(string, ...any) {}
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	return cfg, nil
}

// CheckJumpHost accepts a jump host of the form [user@]host[:port] with a
// port from 1 to 65535, as DialSSH takes it.
func CheckJumpHost(spec string) error {
	_, err := parseJumpHost(spec, "user")
	return err
}

func parseJumpHost(spec, defaultUser string) (*endpoint, error) {
	u, hostport := defaultUser, spec
	if i := strings.LastIndex(spec, "@"); i >= 0 {
		u, hostport = spec[:i], spec[i+1:]
	}
	host, port := hostport, "22"
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		host, port = h, p
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 || host == "" || u == "" {
		return nil, fmt.Errorf("ssh: jump host %q is not [user@]host[:port]", spec)
	}
	return &endpoint{user: u, addr: net.JoinHostPort(host, port)}, nil
}

// String names the transport for logs.
func (s *SSH) String() string {
	if s.jump != nil {
		return "ssh " + s.name + " via " + s.jump.String()
	}
	return "ssh " + s.name
}

// Close ends the connection and any reconnect in progress. Runs still in
// flight fail.
func (s *SSH) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.cancel()
	if s.conn != nil {
		s.conn.kill(errClosed)
	}
	return nil
}

var errClosed = errors.New("transport closed")

// connection returns a live connection, reconnecting if the current one is
// dead. Concurrent callers share one reconnect; each waits for it only as
// long as its own ctx allows.
func (s *SSH) connection(ctx context.Context) (*sshConn, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("ssh %s: %w", s.name, errClosed)
	}
	if s.conn != nil && !s.conn.isDead() {
		c := s.conn
		s.mu.Unlock()
		return c, nil
	}
	r := s.redial
	if r == nil {
		r = &redial{done: make(chan struct{})}
		s.redial = r
		go s.reconnect(r, s.conn)
	}
	s.mu.Unlock()
	select {
	case <-r.done:
		return r.conn, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *SSH) reconnect(r *redial, old *sshConn) {
	if old != nil {
		s.cfg.Logf("ssh %s: connection lost (%v); reconnecting", s.name, old.cause)
	}
	c, err := s.dialWithRetry(s.ctx, "reconnecting")
	s.mu.Lock()
	if s.closed {
		// Close cancelled the dial or raced its success.
		if c != nil {
			c.kill(errClosed)
		}
		c, err = nil, fmt.Errorf("ssh %s: %w", s.name, errClosed)
	}
	if err == nil {
		s.conn = c
	}
	r.conn, r.err = c, err
	s.redial = nil
	s.mu.Unlock()
	close(r.done)
}

// dialWithRetry dials until it succeeds, meets a failure that retrying
// cannot fix, or ReconnectBudget is spent; an attempt started within the
// budget is allowed to finish.
func (s *SSH) dialWithRetry(ctx context.Context, verb string) (*sshConn, error) {
	start := s.now()
	deadline := start.Add(s.cfg.ReconnectBudget)
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		c, err := s.dialOnce(ctx)
		if err == nil {
			if attempt > 1 {
				s.cfg.Logf("ssh %s: connected (attempt %d)", s.name, attempt)
			}
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var de *dialError
		if errors.As(err, &de) && de.permanent {
			return nil, err
		}
		wait := min(backoff, deadline.Sub(s.now()))
		if wait <= 0 {
			return nil, Unreachable(fmt.Errorf(
				"ssh %s: still unreachable after %d attempts in %s; last error: %w",
				s.name, attempt, s.now().Sub(start).Round(100*time.Millisecond), unprefixed(err, s.name)))
		}
		s.cfg.Logf("%v; %s (attempt %d) in %s", err, verb, attempt+1, wait.Round(10*time.Millisecond))
		if err := s.sleep(ctx, wait); err != nil {
			return nil, err
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// now is the time by which dialWithRetry spends its budget.
func (s *SSH) now() time.Time {
	if s.hooks != nil && s.hooks.now != nil {
		return s.hooks.now()
	}
	return time.Now()
}

// sleep waits d between dial attempts, or until ctx ends.
func (s *SSH) sleep(ctx context.Context, d time.Duration) error {
	if s.hooks != nil && s.hooks.sleep != nil {
		return s.hooks.sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// unprefixed drops the "ssh user@host:port: " that a dial error starts with,
// so that wrapping it does not name the host twice.
func unprefixed(err error, name string) error {
	msg := strings.TrimPrefix(err.Error(), "ssh "+name+": ")
	return &wrapped{msg: msg, err: err}
}

type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }

// acquireSession takes a session token, waiting as long as ctx allows.
func (s *SSH) acquireSession(ctx context.Context) error {
	select {
	case s.sessions <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *SSH) releaseSession() { <-s.sessions }

// openSession opens a session on a live connection. A session that cannot
// be opened because the connection just died ran nothing, so it is safe to
// reconnect and try again here.
//
// A live connection whose server refuses the session is asked again a few
// times: sshd frees a session's slot (MaxSessions) only once it has seen the
// client's close and the child's exit, which on a loaded login node can lag
// behind the close that freed our own token, so a burst of short commands
// can meet a refusal for a moment.
func (s *SSH) openSession(ctx context.Context) (*sshConn, *ssh.Session, error) {
	const drops = 3
	dropped, refused := 0, 0
	backoff := firstRefusalBackoff
	for {
		c, err := s.connection(ctx)
		if err != nil {
			return nil, nil, err
		}
		sess, err := c.client.NewSession()
		if err == nil {
			if refused > 0 {
				s.cfg.Debugf("ssh %s: session opened after %d refusals", s.name, refused)
			}
			return c, sess, nil
		}
		if c.ping(s.cfg.KeepAliveInterval) != nil {
			if dropped++; dropped == drops {
				return nil, nil, Unreachable(fmt.Errorf("ssh %s: the connection keeps dropping: %v", s.name, c.cause))
			}
			continue
		}
		// The connection is fine; the server refused the session.
		var oce *ssh.OpenChannelError
		if refused++; !errors.As(err, &oce) || refused > sessionRefusals {
			return nil, nil, Unreachable(fmt.Errorf("ssh %s: cannot open a session (refused %d times): %w", s.name, refused, err))
		}
		if err := s.sleep(ctx, backoff); err != nil {
			return nil, nil, err
		}
		backoff = min(2*backoff, maxRefusalBackoff)
	}
}

// A refused session is asked for again sessionRefusals times, about 6 s in
// all, before the refusal counts as the server's answer.
const (
	sessionRefusals     = 8
	firstRefusalBackoff = 50 * time.Millisecond
	maxRefusalBackoff   = time.Second
)

// Run runs cmd as `bash -c cmd` on the login node (under whatever login
// shell the user has), so that commands behave as under Local. stdin is
// streamed when not nil; otherwise the command reads /dev/null. A non-zero
// exit returns an *ExitError (Code -1 for a signal); its Stderr holds the
// tail of stderr when the caller passed no stderr writer.
//
// When ctx ends, the remote command's process group is killed, the session
// closed and ctx.Err() returned. A connection that breaks while the command
// runs returns an error matching ErrConnectionLost; a command without stdin
// is then killed on the node too (as soon as sshd notices the break), so
// nothing of it lingers there. Processes it deliberately left running in
// the background when it exited normally are not touched. A command given
// stdin has no such lifeline: it is sent SIGKILL through sshd (which sshd
// refuses for root) and sees its input end.
//
// A command without stdin runs in a helper shell when one is free (see
// helperScript): the same contract, without a login per command, but for
// two things. A signal shows as the shell's exit status 128+n instead of
// Code -1. What the command leaves running in the background lives as long
// as the helper, which ends with the connection (none of the runner's
// commands leaves anything behind).
func (s *SSH) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if stdin == nil {
		return s.runQuick(ctx, cmd, cmd, stdout, stderr)
	}
	return s.run(ctx, cmd, cmd, stdin, stdout, stderr)
}

// runQuick runs a command without input in a helper shell, or in a session
// of its own when no helper is free.
func (s *SSH) runQuick(ctx context.Context, label, cmd string, stdout, stderr io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !strings.ContainsRune(cmd, 0) {
		h, err := s.takeHelper(ctx)
		if err != nil {
			return err
		}
		if h != nil {
			return s.runInHelper(ctx, h, label, cmd, stdout, stderr)
		}
	}
	return s.run(ctx, label, cmd, nil, stdout, stderr)
}

// run is Run with a separate label, the command as errors show it.
func (s *SSH) run(ctx context.Context, label, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.acquireSession(ctx); err != nil {
		return err
	}
	defer s.releaseSession()
	start := time.Now()
	c, sess, err := s.openSession(ctx)
	if err != nil {
		return err
	}
	defer sess.Close()
	opened := time.Now()
	defer func() {
		s.cfg.Debugf("ssh %s: %s: session open %s, command %s", s.name, shortCmd(label),
			opened.Sub(start).Round(time.Microsecond), time.Since(opened).Round(time.Microsecond))
	}()

	var tail *tailBuffer
	if stderr == nil {
		tail = &tailBuffer{}
		stderr = tail
	}
	var guard outputGuard
	sess.Stdout, sess.Stderr = guard.wrap(stdout, stderr)
	defer guard.detach()

	// stdin is fed by us rather than through Session.Stdin: the library
	// counts a failed stdin copy (a command that exits without reading all
	// of it) as a failure of the command. Without caller input the pipe
	// stays open as the command's lifeline (see withLifeline).
	stdinPipe, err := sess.StdinPipe()
	if err != nil {
		return fmt.Errorf("ssh %s: %w", s.name, err)
	}
	remote := cmd
	if stdin == nil {
		remote = withLifeline(cmd)
	}
	if err := sess.Start(remoteBash + shellquote.Quote(remote)); err != nil {
		if c.ping(s.cfg.KeepAliveInterval) != nil {
			// The exec request may have reached the server before the
			// connection broke.
			return s.lost(label, c.cause)
		}
		return Unreachable(fmt.Errorf("ssh %s: cannot start %s: %w", s.name, shortCmd(label), err))
	}
	stdinDone := make(chan struct{})
	if stdin != nil {
		go func() {
			defer close(stdinDone)
			io.Copy(stdinPipe, stdin)
			stdinPipe.Close()
		}()
	} else {
		close(stdinDone)
	}

	waitc := make(chan error, 1)
	go func() { waitc <- sess.Wait() }()
	select {
	case err = <-waitc:
	case <-ctx.Done():
		// sshd delivers "signal" to the session's process group (killpg),
		// which reaches everything the command started. It refuses to for
		// root logins (those run in its privileged monitor), hence also
		// the lifeline, which closing the session cuts.
		sess.Signal(ssh.SIGKILL)
		sess.Close()
		waitAtMost(waitc, cancelGrace)
		return ctx.Err()
	}
	// The command has ended, so its stdin is no longer read; a reader that
	// still blocks is the caller's and is left behind rather than waited for.
	waitAtMost(stdinDone, cancelGrace)

	var ee *ssh.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		code := ee.ExitStatus()
		if ee.Signal() != "" {
			code = -1
		}
		return &ExitError{Cmd: label, Code: code, Stderr: tail.String()}
	case c.ping(s.cfg.KeepAliveInterval) != nil:
		return s.lost(label, c.cause)
	}
	var missing *ssh.ExitMissingError
	if errors.As(err, &missing) {
		return &ExitError{Cmd: label, Code: -1, Stderr: tail.String()}
	}
	// What is left is a failure to write the output to the caller's writers.
	return fmt.Errorf("ssh %s: %s: %w", s.name, shortCmd(label), err)
}

// withLifeline wraps cmd so that its process group is killed when the
// session ends before it does: a cancelled Run, a runner that died, a
// dropped connection. sshd's "signal" request cannot be relied on for that
// (it is refused for root) and sshd itself leaves a disconnected session's
// processes running, which on a shared login node piles up tail -f's.
//
// The command gets /dev/null as stdin, as under Local; the session's stdin
// stays open, held by a watcher, until Run closes the session. When it
// reads end of input while the command (the wrapper's pid, which exec
// keeps) still runs, it kills the group. After a normal exit the pid is
// gone by then (sshd reaps it before it reports the exit status that makes
// Run return), so what the command deliberately left running survives.
func withLifeline(cmd string) string {
	return `exec 3<&0 </dev/null; ` +
		`{ cat <&3; kill -0 $$ && kill -KILL 0; } >/dev/null 2>&1 & ` +
		`exec 3<&-; exec ` + remoteBash + shellquote.Quote(cmd)
}

// remoteBash starts our layers of bash on the node. Bash started under
// sshd sources ~/.bashrc even when not interactive, and every layer would
// again: measured on the test cluster, 100 ms each (a pyenv init), and
// cluster users' module loads are slower still. The login shell that sshd
// starts has sourced it once already and its exports are inherited, so the
// environment is the user's either way.
const remoteBash = "bash --norc -c "

// lost reports a command whose fate is unknown: the connection (or the
// helper shell running it) went away while it ran.
func (s *SSH) lost(label string, cause error) error {
	return Unreachable(fmt.Errorf("ssh %s: %w (%s; cause: %v)",
		s.name, ErrConnectionLost, shortCmd(label), cause))
}

// waitAtMost waits for a value on ch, or d, whichever comes first.
func waitAtMost[T any](ch <-chan T, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

// shortCmd keeps long scripts from swamping a one-line error.
func shortCmd(cmd string) string {
	cmd = strings.Join(strings.Fields(cmd), " ")
	const max = 120
	if len(cmd) > max {
		cmd = cmd[:max] + "..."
	}
	return strconv.Quote(cmd)
}

// WriteFile writes data into a temporary file next to path and renames it
// into place (no scp or sftp binary is needed on either side). A small file
// travels inside the command, base64-encoded, so that it can go through a
// helper shell; a large one is streamed as the input of a session of its
// own. The size is checked before the rename: when the connection breaks,
// the remote reader sees an early end of input and exits 0, and only the
// check keeps the truncated file from becoming path. The temporary file is
// removed on any failure the remote shell lives through. WriteFile is safe
// to repeat, for example after ErrConnectionLost.
func (s *SSH) WriteFile(ctx context.Context, p string, data []byte, mode os.FileMode) error {
	var rnd [8]byte
	rand.Read(rnd[:])
	dir := path.Dir(p)
	tmp := path.Join(dir, "."+path.Base(p)+".tmp-"+hex.EncodeToString(rnd[:]))
	inline := len(data) <= inlineWriteMax
	reader := `cat > "$tmp"`
	if inline {
		reader = `base64 -d > "$tmp" <<'DISAGG_RUNNER_EOF'`
	}
	script := fmt.Sprintf(`tmp=%s; trap 'rm -f -- "$tmp"' EXIT; `+
		`mkdir -p -- %s && %s && test "$(wc -c < "$tmp")" -eq %d && `+
		`chmod %04o "$tmp" && mv -f -- "$tmp" %s && trap - EXIT`,
		shellquote.Quote(tmp), shellquote.Quote(dir), reader, len(data), uint32(mode.Perm()), shellquote.Quote(p))
	var err error
	if inline {
		script += "\n" + base64.StdEncoding.EncodeToString(data) + "\nDISAGG_RUNNER_EOF\n"
		err = s.runQuick(ctx, "write "+p, script, nil, nil)
	} else {
		err = s.run(ctx, "write "+p, script, bytes.NewReader(data), nil, nil)
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("ssh %s: %w", s.name, err)
	}
	return err
}

// inlineWriteMax is the largest file WriteFile sends inside the command:
// its base64 (4/3 of it) must stay under Linux's limit for one argument of
// a program (128 KiB, `bash -c` takes the command as one), and a helper
// shell reads its commands a byte per system call (it must not read ahead).
const inlineWriteMax = 64 << 10
