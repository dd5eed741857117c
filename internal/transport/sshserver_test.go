package transport

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// testServer is a small SSH server for the tests: it runs exec requests
// with bash on this machine, as sshd would on the login node, and can be
// told to misbehave.
type testServer struct {
	t    testing.TB
	ln   net.Listener
	addr string // 127.0.0.1:port
	port int

	mu         sync.Mutex
	hostKeys   []ssh.Signer
	authorized [][]byte // marshalled user public keys
	conns      map[net.Conn]struct{}
	beforeExec func() // when set, runs before each command starts (and may block it)

	refuseAuth           atomic.Bool
	refuseSessions       atomic.Int32 // > 0: refuse that many more session opens, as sshd does at MaxSessions
	ignoreKeepAlivesFrom atomic.Int32 // > 0: leave the n-th keepalive and later ones unanswered
	ignoreSignals        atomic.Bool  // refuse "signal", as sshd does for root logins
	dropAfterStdin       atomic.Int64 // > 0: cut the TCP connection once a session has read this many stdin bytes
	allowForwarding      bool         // act as a jump host (direct-tcpip)

	logins     atomic.Int32 // connections that logged in
	refused    atomic.Int32 // session opens refused
	keepAlives atomic.Int32
	forwards   atomic.Int32
	open       atomic.Int32 // sessions open now
	maxOpen    atomic.Int32 // the most sessions open at once
	execs      atomic.Int32 // commands started
}

func newTestServer(t testing.TB, hostKeys ...ssh.Signer) *testServer {
	t.Helper()
	if len(hostKeys) == 0 {
		hostKeys = []ssh.Signer{testSigner(t, "host-ed25519")}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{
		t:        t,
		ln:       ln,
		addr:     ln.Addr().String(),
		port:     ln.Addr().(*net.TCPAddr).Port,
		hostKeys: hostKeys,
		conns:    map[net.Conn]struct{}{},
	}
	go s.serve()
	t.Cleanup(s.close)
	return s
}

func (s *testServer) authorize(keys ...ssh.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		s.authorized = append(s.authorized, k.Marshal())
	}
}

// setHostKeys changes the keys presented from the next connection on.
func (s *testServer) setHostKeys(keys ...ssh.Signer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hostKeys = keys
}

// setBeforeExec makes f run before each command starts, while its
// session is open and its exec request unanswered: a test can hold
// commands back there.
func (s *testServer) setBeforeExec(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beforeExec = f
}

// dropAll cuts every connection at the TCP level, as a network failure
// or a restarted sshd would.
func (s *testServer) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

func (s *testServer) close() {
	s.ln.Close()
	s.dropAll()
}

func (s *testServer) serve() {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[nc] = struct{}{}
		s.mu.Unlock()
		go s.handleConn(nc)
	}
}

func (s *testServer) handleConn(nc net.Conn) {
	defer func() {
		nc.Close()
		s.mu.Lock()
		delete(s.conns, nc)
		s.mu.Unlock()
	}()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if s.refuseAuth.Load() {
				return nil, errors.New("refused")
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, k := range s.authorized {
				if bytes.Equal(k, key.Marshal()) {
					return &ssh.Permissions{}, nil
				}
			}
			return nil, errors.New("unknown key")
		},
	}
	s.mu.Lock()
	for _, k := range s.hostKeys {
		cfg.AddHostKey(k)
	}
	s.mu.Unlock()
	conn, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		return
	}
	defer conn.Close()
	s.logins.Add(1)
	go s.handleGlobal(reqs)
	for nch := range chans {
		switch {
		case nch.ChannelType() == "session" && s.refuseSessions.Add(-1) >= 0:
			s.refused.Add(1)
			nch.Reject(ssh.ConnectionFailed, "open failed")
		case nch.ChannelType() == "session":
			go s.handleSession(nch, nc)
		case nch.ChannelType() == "direct-tcpip" && s.allowForwarding:
			go s.handleForward(nch)
		default:
			nch.Reject(ssh.UnknownChannelType, "not here")
		}
	}
}

func (s *testServer) handleGlobal(reqs <-chan *ssh.Request) {
	for req := range reqs {
		if req.Type == "keepalive@openssh.com" {
			n := s.keepAlives.Add(1)
			if from := s.ignoreKeepAlivesFrom.Load(); from > 0 && n >= from {
				continue
			}
		}
		// Like OpenSSH: unknown global requests, keepalives included, get
		// a failure reply, which still proves the server alive.
		if req.WantReply {
			req.Reply(false, nil)
		}
	}
}

func (s *testServer) handleSession(nch ssh.NewChannel, nc net.Conn) {
	ch, reqs, err := nch.Accept()
	if err != nil {
		return
	}
	n := s.open.Add(1)
	for {
		m := s.maxOpen.Load()
		if n <= m || s.maxOpen.CompareAndSwap(m, n) {
			break
		}
	}
	// Counted closed before the close message goes out, as a client can
	// only reuse the slot after it has seen that message.
	defer ch.Close()
	defer s.open.Add(-1)

	var cmd *exec.Cmd
	exited := make(chan struct{})
	for {
		var req *ssh.Request
		select {
		case req = <-reqs:
		case <-exited:
			s.finish(ch, cmd)
			return
		}
		if req == nil {
			if cmd != nil {
				<-exited
			}
			return
		}
		switch {
		case req.Type == "exec" && cmd == nil:
			var payload struct{ Command string }
			if ssh.Unmarshal(req.Payload, &payload) != nil {
				req.Reply(false, nil)
				continue
			}
			s.mu.Lock()
			before := s.beforeExec
			s.mu.Unlock()
			if before != nil {
				before()
			}
			cmd = exec.Command("bash", "-c", payload.Command)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			cmd.Stdout = ch
			cmd.Stderr = ch.Stderr()
			stdin, err := cmd.StdinPipe()
			if err != nil || cmd.Start() != nil {
				req.Reply(false, nil)
				return
			}
			s.execs.Add(1)
			req.Reply(true, nil)
			go s.feedStdin(ch, stdin, nc)
			go func() {
				cmd.Wait()
				close(exited)
			}()
		case req.Type == "signal" && cmd != nil && !s.ignoreSignals.Load():
			// sshd delivers signals to the session's process group.
			var payload struct{ Signal string }
			if ssh.Unmarshal(req.Payload, &payload) == nil {
				if sig, ok := signalsByName[payload.Signal]; ok {
					syscall.Kill(-cmd.Process.Pid, sig)
				}
			}
		default:
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
}

var signalsByName = map[string]syscall.Signal{
	"KILL": syscall.SIGKILL, "TERM": syscall.SIGTERM, "INT": syscall.SIGINT, "HUP": syscall.SIGHUP,
}

// feedStdin copies the session's input to the command, cutting the whole
// connection once dropAfterStdin bytes went through, when asked to.
func (s *testServer) feedStdin(ch ssh.Channel, stdin io.WriteCloser, nc net.Conn) {
	defer stdin.Close()
	limit := s.dropAfterStdin.Load()
	var total int64
	buf := make([]byte, 32*1024)
	for {
		n, err := ch.Read(buf)
		if n > 0 {
			if _, werr := stdin.Write(buf[:n]); werr != nil {
				io.Copy(io.Discard, ch)
				return
			}
			total += int64(n)
			if limit > 0 && total >= limit {
				nc.Close()
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// finish reports how the command ended, as sshd does.
func (s *testServer) finish(ch ssh.Channel, cmd *exec.Cmd) {
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		name := "KILL"
		for n, sig := range signalsByName {
			if sig == ws.Signal() {
				name = n
			}
		}
		ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}{Signal: name}))
		return
	}
	var status [4]byte
	binary.BigEndian.PutUint32(status[:], uint32(ws.ExitStatus()))
	ch.SendRequest("exit-status", false, status[:])
}

func (s *testServer) handleForward(nch ssh.NewChannel) {
	var target struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if ssh.Unmarshal(nch.ExtraData(), &target) != nil {
		nch.Reject(ssh.ConnectionFailed, "bad request")
		return
	}
	tc, err := net.Dial("tcp", net.JoinHostPort(target.Host, strconv.Itoa(int(target.Port))))
	if err != nil {
		nch.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nch.Accept()
	if err != nil {
		tc.Close()
		return
	}
	s.forwards.Add(1)
	go ssh.DiscardRequests(reqs)
	go func() {
		io.Copy(ch, tc)
		ch.CloseWrite()
	}()
	io.Copy(tc, ch)
	tc.Close()
	ch.Close()
}

// Keys are generated once per test binary and named, so that tests can
// ask for "the same" or "a different" key.
var (
	keysMu sync.Mutex
	keys   = map[string]any{}
)

func testPrivateKey(t testing.TB, name string) any {
	t.Helper()
	keysMu.Lock()
	defer keysMu.Unlock()
	if k, ok := keys[name]; ok {
		return k
	}
	var k any
	var err error
	switch {
	case strings.Contains(name, "rsa"):
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case strings.Contains(name, "ecdsa"):
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	keys[name] = k
	return k
}

func testSigner(t testing.TB, name string) ssh.Signer {
	t.Helper()
	s, err := ssh.NewSignerFromKey(testPrivateKey(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writeKeyFile writes the named private key as an OpenSSH key file,
// encrypted when passphrase is not empty.
func writeKeyFile(t testing.TB, name, passphrase string) string {
	t.Helper()
	var block *pem.Block
	var err error
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(testPrivateKey(t, name), "test")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(testPrivateKey(t, name), "test", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeKnownHosts writes a known_hosts file holding keys for addr.
func writeKnownHosts(t testing.TB, addr string, keys ...ssh.PublicKey) string {
	t.Helper()
	var b bytes.Buffer
	for _, k := range keys {
		b.WriteString(knownhosts.Line([]string{knownhosts.Normalize(addr)}, k) + "\n")
	}
	path := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func appendKnownHosts(t testing.TB, path, addr string, keys ...ssh.PublicKey) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, k := range keys {
		f.WriteString(knownhosts.Line([]string{knownhosts.Normalize(addr)}, k) + "\n")
	}
}
