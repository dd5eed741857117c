package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/disagg-runner/disagg-runner/internal/inputfile"
	"github.com/disagg-runner/disagg-runner/internal/shellquote"
)

// knownHostsFile verifies host keys against an OpenSSH known_hosts file and,
// with acceptNew, records the keys of hosts it does not know yet.
type knownHostsFile struct {
	path      string
	acceptNew bool
	logf      func(string, ...any)
	mu        sync.Mutex // serialises appends from concurrent dials
}

// hostKeyError is a refused host key, phrased for the user.
type hostKeyError struct{ msg string }

func (e *hostKeyError) Error() string { return e.msg }

// hostKeyPlan is how to check one address's host key.
type hostKeyPlan struct {
	callback   ssh.HostKeyCallback
	algorithms []string // what to ask the server for, most wanted first
	known      bool     // the file holds keys for the address
}

// forAddr reads the file afresh (an accept-new append or the user's edit
// counts from the next dial on) and plans the check for addr. The
// algorithms asked for are those of the keys the file holds for addr: a
// server presents one host key, picked by the client's preference, and if
// that is a type the file lacks (ecdsa when only ed25519 was recorded) the
// check fails as if the key had changed.
func (k *knownHostsFile) forAddr(addr string) (*hostKeyPlan, error) {
	// knownhosts opens the file as it is: a FIFO would block it, a device
	// fill the memory. A file Read accepts is read again by knownhosts.
	if _, err := inputfile.Read(k.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("cannot read known_hosts file: %v", err)
	}
	check, err := knownhosts.New(k.path)
	if errors.Is(err, fs.ErrNotExist) {
		check = func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }
	} else if err != nil {
		return nil, fmt.Errorf("cannot read known_hosts file: %v", err)
	}
	plan := &hostKeyPlan{
		callback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			err := check(hostname, remote, key)
			if err == nil {
				return nil
			}
			return k.refuse(hostname, key, err)
		},
		algorithms: preferredHostKeyAlgorithms,
	}
	if want := wantedKeys(check, addr); len(want) > 0 {
		plan.known = true
		plan.algorithms = hostKeyAlgorithms(want)
	}
	return plan, nil
}

// probeKey is a key no known_hosts file holds: checking it makes knownhosts
// list every key it has for an address.
var probeKey = sync.OnceValue(func() ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return key
})

// wantedKeys returns the keys the file holds for addr. knownhosts matches
// on the host name it is given (not on the IP address it is also given), so
// the remote address passed here only has to be well-formed.
func wantedKeys(check ssh.HostKeyCallback, addr string) []knownhosts.KnownKey {
	err := check(addr, &net.TCPAddr{IP: net.IPv4zero}, probeKey())
	var ke *knownhosts.KeyError
	if errors.As(err, &ke) {
		return ke.Want
	}
	return nil
}

// preferredHostKeyAlgorithms is OpenSSH's default order (less the
// security-key types). It is what an unknown host is asked for, so that
// the key accept-new records and the fingerprint an error shows are the
// ones `ssh` would show; the library's own order puts ECDSA and RSA first.
// Certificates come first, as in OpenSSH, for @cert-authority entries.
var preferredHostKeyAlgorithms = []string{
	ssh.CertAlgoED25519v01, ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01, ssh.CertAlgoECDSA521v01,
	ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01,
	ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
}

// hostKeyAlgorithms maps recorded keys to the signature algorithms that
// can present them, in preferredHostKeyAlgorithms' order. An RSA key is the
// type "ssh-rsa" but any current server presents it as rsa-sha2-512 or
// rsa-sha2-256; listing only "ssh-rsa" (SHA-1) fails against servers that
// turned SHA-1 off. It stays listed last, for old servers.
func hostKeyAlgorithms(keys []knownhosts.KnownKey) []string {
	var algos []string
	add := func(a ...string) {
		for _, x := range a {
			if !slices.Contains(algos, x) {
				algos = append(algos, x)
			}
		}
	}
	for _, k := range keys {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			add(t)
		}
	}
	rank := func(a string) int {
		if i := slices.Index(preferredHostKeyAlgorithms, a); i >= 0 {
			return i
		}
		return len(preferredHostKeyAlgorithms)
	}
	slices.SortStableFunc(algos, func(a, b string) int { return rank(a) - rank(b) })
	return algos
}

// refuse turns a failed check into a one-line hostKeyError, or accepts a
// new host when allowed.
func (k *knownHostsFile) refuse(hostname string, key ssh.PublicKey, err error) error {
	offered := fmt.Sprintf("%s key %s", key.Type(), ssh.FingerprintSHA256(key))
	name := knownHostsName(hostname)
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &ke) && len(ke.Want) == 0:
		if k.acceptNew {
			if err := k.add(hostname, key); err != nil {
				return &hostKeyError{fmt.Sprintf("cannot record the new host key in %s: %v", k.path, err)}
			}
			k.logf("ssh %s: new host, added its %s to %s", hostname, offered, k.path)
			return nil
		}
		host, port, _ := net.SplitHostPort(hostname)
		return &hostKeyError{fmt.Sprintf(
			"unknown host: %s has no key for %s (it offers %s); after checking that fingerprint, add it with `ssh-keyscan -p %s %s >> %s`, or use the accept-new host key option",
			k.path, name, offered, port, shellquote.Quote(host), shellquote.Quote(k.path))}
	case errors.As(err, &ke):
		var lines []string
		for _, w := range ke.Want {
			lines = append(lines, fmt.Sprintf("%s:%d", w.Filename, w.Line))
		}
		return &hostKeyError{fmt.Sprintf(
			"HOST KEY MISMATCH: the server offers %s, which is not the key %s holds for %s (%s); someone may be intercepting the connection, or the key really changed: then remove the old entry with `ssh-keygen -R %s -f %s`",
			offered, k.path, name, strings.Join(lines, ", "), shellquote.Quote(name), shellquote.Quote(k.path))}
	case errors.As(err, &re):
		return &hostKeyError{fmt.Sprintf("the server offers %s, which %s:%d marks as revoked", offered, re.Revoked.Filename, re.Revoked.Line)}
	default:
		return &hostKeyError{fmt.Sprintf("host key %s refused: %v", offered, err)}
	}
}

// add appends a line for hostname, as OpenSSH's accept-new does. The file
// and its folder are created with the permissions ssh expects.
func (k *knownHostsFile) add(hostname string, key ssh.PublicKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(k.path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(k.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	line := knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key) + "\n"
	// A file whose last line lacks its newline would otherwise get our
	// entry glued to it.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			line = "\n" + line
		}
	}
	if _, err := f.WriteString(line); err != nil {
		return err
	}
	return f.Sync()
}

// knownHostsName is how known_hosts and ssh-keygen -R write an address:
// "host" on port 22, "[host]:port" otherwise.
func knownHostsName(addr string) string {
	return knownhosts.Normalize(addr)
}
