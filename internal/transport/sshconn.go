package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/disagg-runner/disagg-runner/internal/shellquote"
)

// hooks let tests step the clocks an SSH runs on instead of waiting for
// them. Production code never sets any: a test sets testHooks before
// DialSSH (which copies the pointer into the SSH and its connections)
// and puts the old value back when it ends. Nil fields keep the real
// clock.
type hooks struct {
	// now and sleep replace time.Now and the timer between dial
	// attempts, so that a ReconnectBudget is spent without waiting.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
	// keepAliveTick replaces the ticker of KeepAliveInterval: a
	// keepalive goes out for each value received.
	keepAliveTick <-chan time.Time
	// pingExpired replaces the timer that bounds the wait for the answer
	// to a keepalive.
	pingExpired func(timeout time.Duration) <-chan time.Time
}

// testHooks is copied into every SSH that DialSSH makes; nil but in tests.
var testHooks *hooks

// sshConn is one established connection (and the jump host connection it
// runs through, if any). Once dead it stays dead; the SSH replaces it.
type sshConn struct {
	client *ssh.Client
	jump   *ssh.Client
	hooks  *hooks // nil but in tests

	dead  chan struct{}
	once  sync.Once
	cause error // set before dead is closed
}

func newSSHConn(client, jump *ssh.Client, keepAlive time.Duration, h *hooks) *sshConn {
	c := &sshConn{client: client, jump: jump, hooks: h, dead: make(chan struct{})}
	go func() {
		err := client.Wait()
		if err == nil || errors.Is(err, io.EOF) {
			err = errors.New("closed by the server or the network")
		}
		c.kill(err)
	}()
	go c.keepAlive(keepAlive)
	return c
}

// kill marks the connection dead and closes it, which also ends every
// session still open on it.
func (c *sshConn) kill(cause error) {
	c.once.Do(func() {
		c.cause = cause
		close(c.dead)
		c.client.Close()
		if c.jump != nil {
			c.jump.Close()
		}
	})
}

func (c *sshConn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// keepAlive sends keepalive@openssh.com global requests. Any answer, even
// the "unsupported" that OpenSSH gives, proves the peer alive; a missing or
// failed one marks the connection dead, so that the next Run reconnects
// instead of hanging on a connection that a NAT or firewall silently dropped.
func (c *sshConn) keepAlive(interval time.Duration) {
	var tick <-chan time.Time
	if c.hooks != nil && c.hooks.keepAliveTick != nil {
		tick = c.hooks.keepAliveTick
	} else {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-c.dead:
			return
		case <-tick:
			if c.ping(keepAliveMisses*interval) != nil {
				return
			}
		}
	}
}

// ping sends one keepalive and waits up to timeout for the answer; failing,
// it kills the connection and returns why.
func (c *sshConn) ping(timeout time.Duration) error {
	if c.isDead() {
		return c.cause
	}
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
		errc <- err
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	expired := t.C
	if c.hooks != nil && c.hooks.pingExpired != nil {
		expired = c.hooks.pingExpired(timeout)
	}
	select {
	case err := <-errc:
		if err != nil {
			c.kill(fmt.Errorf("keepalive failed: %w", err))
			return c.cause
		}
		return nil
	case <-expired:
		c.kill(fmt.Errorf("no answer to keepalive within %s", timeout))
		return c.cause
	case <-c.dead:
		return c.cause
	}
}

// dialError is a connect failure, already phrased for the user.
type dialError struct {
	msg       string
	permanent bool // retrying cannot help: fail at once
	err       error
}

func (e *dialError) Error() string { return e.msg }
func (e *dialError) Unwrap() error { return e.err }

// dialOnce makes one attempt to connect and log in, through the jump host
// when there is one.
func (s *SSH) dialOnce(ctx context.Context) (*sshConn, error) {
	target := &endpoint{user: s.cfg.User, addr: s.addr}
	if s.jump == nil {
		nc, err := s.dialTCP(ctx, target)
		if err != nil {
			return nil, err
		}
		client, err := s.login(ctx, nc, target)
		if err != nil {
			return nil, err
		}
		return newSSHConn(client, nil, s.cfg.KeepAliveInterval, s.hooks), nil
	}

	nc, err := s.dialTCP(ctx, s.jump)
	if err != nil {
		return nil, s.viaJump(err)
	}
	jc, err := s.login(ctx, nc, s.jump)
	if err != nil {
		return nil, s.viaJump(err)
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	tc, err := jc.DialContext(dctx, "tcp", s.addr)
	cancel()
	if err != nil {
		jc.Close()
		return nil, Unreachable(&dialError{
			msg: fmt.Sprintf("ssh %s: the jump host %s cannot connect to it: %v (check the host and port as the jump host sees them)", s.name, s.jump, err),
			err: err,
		})
	}
	client, err := s.login(ctx, tc, target)
	if err != nil {
		jc.Close()
		return nil, err
	}
	return newSSHConn(client, jc, s.cfg.KeepAliveInterval, s.hooks), nil
}

// viaJump names the login node in an error about its jump host, so that
// the user knows which of the two the message is about.
func (s *SSH) viaJump(err error) error {
	var de *dialError
	if !errors.As(err, &de) {
		return err
	}
	return Unreachable(&dialError{
		msg:       de.msg + " (jump host for " + s.name + ")",
		permanent: de.permanent,
		err:       de.err,
	})
}

func (s *SSH) dialTCP(ctx context.Context, e *endpoint) (net.Conn, error) {
	d := net.Dialer{Timeout: s.cfg.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", e.addr)
	if err != nil {
		return nil, s.connectError(e, err)
	}
	return nc, nil
}

// login runs the SSH handshake and authentication over nc. The library's
// own Timeout covers only the TCP connect, so a server that accepts and
// then says nothing is cut off here.
func (s *SSH) login(ctx context.Context, nc net.Conn, e *endpoint) (*ssh.Client, error) {
	plan, err := s.hosts.forAddr(e.addr)
	if err != nil {
		nc.Close()
		return nil, Unreachable(&dialError{
			msg: fmt.Sprintf("ssh %s: %v", e, err), permanent: true, err: err})
	}
	auth, done := s.auth.method()
	defer done()
	cfg := &ssh.ClientConfig{
		User:              e.user,
		Auth:              []ssh.AuthMethod{auth},
		HostKeyCallback:   plan.callback,
		HostKeyAlgorithms: plan.algorithms,
	}

	var timedOut atomic.Bool
	timer := time.AfterFunc(s.cfg.DialTimeout, func() {
		timedOut.Store(true)
		nc.Close()
	})
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	conn, chans, reqs, err := ssh.NewClientConn(nc, e.addr, cfg)
	timerStopped, ctxStopped := timer.Stop(), stop()
	if err == nil && (!timerStopped || !ctxStopped) {
		// The connection was cut just as the handshake finished.
		conn.Close()
		err = errors.New("handshake interrupted")
	}
	if err != nil {
		nc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if timedOut.Load() {
			return nil, Unreachable(&dialError{
				msg: fmt.Sprintf("ssh %s: no SSH handshake within %s (is it an SSH server, and is the port right?)", e, s.cfg.DialTimeout),
				err: err,
			})
		}
		return nil, s.handshakeError(e, err, plan)
	}
	return ssh.NewClient(conn, chans, reqs), nil
}

// connectError phrases a failed TCP connect.
func (s *SSH) connectError(e *endpoint, err error) error {
	de := &dialError{err: err}
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns) && dns.IsNotFound:
		de.permanent = true
		de.msg = fmt.Sprintf("ssh %s: unknown host name %q (check the host name)", e, dns.Name)
	case errors.Is(err, syscall.ECONNREFUSED):
		de.msg = fmt.Sprintf("ssh %s: connection refused (is sshd running there, and is the port right?)", e)
	case isTimeout(err):
		de.msg = fmt.Sprintf("ssh %s: no answer within %s (check the host, the port and any firewall in between)", e, s.cfg.DialTimeout)
	default:
		de.msg = fmt.Sprintf("ssh %s: cannot connect: %v", e, err)
	}
	return Unreachable(de)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// handshakeError phrases a failed handshake or login.
func (s *SSH) handshakeError(e *endpoint, err error, plan *hostKeyPlan) error {
	de := &dialError{err: err}
	var hk *hostKeyError
	var neg *ssh.AlgorithmNegotiationError
	switch {
	case errors.As(err, &hk):
		de.permanent = true
		de.msg = fmt.Sprintf("ssh %s: %s", e, hk.msg)
	case errors.As(err, &neg) && neg.What == "host key" && plan.known:
		// We asked only for the types of the keys known_hosts holds for
		// this host, and the server has none of them: its keys changed.
		de.permanent = true
		de.msg = fmt.Sprintf("ssh %s: %s holds host keys for it that the server does not offer (we asked for %s; it offers %s); "+
			"if its keys really changed, remove the old entry with `ssh-keygen -R %s -f %s`",
			e, s.hosts.path, strings.Join(plan.algorithms, ", "), strings.Join(neg.RequestedAlgorithms, ", "),
			shellquote.Quote(knownHostsName(e.addr)), shellquote.Quote(s.hosts.path))
	case errors.As(err, &neg) && neg.What == "host key":
		de.permanent = true
		de.msg = fmt.Sprintf("ssh %s: the server offers no host key type we accept (it offers %s)",
			e, strings.Join(neg.RequestedAlgorithms, ", "))
	case strings.Contains(err.Error(), "unable to authenticate"):
		// The library has no error type for this; its message is stable.
		de.permanent = true
		de.msg = fmt.Sprintf("ssh %s: authentication failed (offered %s); check the user name and that the public key is in ~%s/.ssh/authorized_keys there",
			e, s.auth.describe(), e.user)
	default:
		de.msg = fmt.Sprintf("ssh %s: handshake failed: %v", e, trimSSHPrefix(err))
	}
	return Unreachable(de)
}

func trimSSHPrefix(err error) string {
	return strings.TrimPrefix(err.Error(), "ssh: handshake failed: ")
}
