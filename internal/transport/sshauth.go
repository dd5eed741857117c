package transport

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/disagg-runner/disagg-runner/internal/inputfile"
)

// authSource holds the keys to log in with. Key files are read once, at
// DialSSH, so that a bad key or passphrase fails before any connection; the
// agent is asked afresh on every login, since its keys can change.
type authSource struct {
	signers     []ssh.Signer
	names       []string // the key files behind signers, for messages
	agentSocket string   // "" = no agent
}

// defaultKeyFiles are the ~/.ssh keys tried without a KeyFile, in OpenSSH's
// order (leaving out the DSA key that current servers refuse).
var defaultKeyFiles = []string{"id_ed25519", "id_ecdsa", "id_rsa"}

func newAuthSource(cfg SSHConfig) (*authSource, error) {
	a := &authSource{}
	if cfg.KeyFile != "" {
		signer, err := loadKey(cfg.KeyFile, cfg.KeyPassphrase)
		if err != nil {
			return nil, err
		}
		a.signers, a.names = []ssh.Signer{signer}, []string{cfg.KeyFile}
		return a, nil
	}

	a.agentSocket = cfg.AgentSocket
	var skipped []string
	if home, err := os.UserHomeDir(); err == nil {
		for _, name := range defaultKeyFiles {
			file := filepath.Join(home, ".ssh", name)
			if _, err := os.Stat(file); err != nil {
				continue
			}
			signer, err := loadKey(file, cfg.KeyPassphrase)
			if err != nil {
				// Another default key or the agent may still do; say why
				// this one was left out only if none does.
				skipped = append(skipped, err.Error())
				continue
			}
			a.signers = append(a.signers, signer)
			a.names = append(a.names, file)
		}
	}
	if a.agentSocket == "" && len(a.signers) == 0 {
		if len(skipped) > 0 {
			return nil, errors.New(strings.Join(skipped, "; "))
		}
		return nil, errors.New("no SSH key: give a key file, or start ssh-agent (SSH_AUTH_SOCK), or create ~/.ssh/id_ed25519")
	}
	return a, nil
}

// loadKey reads a private key. The passphrase is never part of an error.
func loadKey(file, passphrase string) (ssh.Signer, error) {
	pem, err := inputfile.Read(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read SSH key file: %v", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	switch {
	case err == nil:
		return signer, nil
	case !errors.As(err, &missing):
		return nil, fmt.Errorf("SSH key file %s is not a usable private key: %v", file, err)
	case passphrase == "":
		return nil, fmt.Errorf("SSH key file %s is encrypted: give its passphrase", file)
	}
	signer, err = ssh.ParsePrivateKeyWithPassphrase(pem, []byte(passphrase))
	if errors.Is(err, x509.IncorrectPasswordError) {
		return nil, fmt.Errorf("wrong passphrase for SSH key file %s", file)
	}
	if err != nil {
		return nil, fmt.Errorf("SSH key file %s cannot be decrypted: %v", file, err)
	}
	return signer, nil
}

// method returns the public key method for one login and a func to call
// after it. Agent keys and files go into one method because the library
// tries each method name once: a second "publickey" method would never run.
func (a *authSource) method() (ssh.AuthMethod, func()) {
	var mu sync.Mutex
	var agentConn net.Conn
	signers := func() ([]ssh.Signer, error) {
		var all []ssh.Signer
		if a.agentSocket != "" {
			if conn, err := net.Dial("unix", a.agentSocket); err == nil {
				mu.Lock()
				agentConn = conn
				mu.Unlock()
				// An agent that fails to list keys is no worse than no
				// agent: the key files are still offered.
				if keys, err := agent.NewClient(conn).Signers(); err == nil {
					all = append(all, keys...)
				}
			}
		}
		return append(all, a.signers...), nil
	}
	done := func() {
		mu.Lock()
		defer mu.Unlock()
		if agentConn != nil {
			agentConn.Close()
		}
	}
	return ssh.PublicKeysCallback(signers), done
}

// describe lists what is offered, for an authentication failure message.
func (a *authSource) describe() string {
	var parts []string
	if a.agentSocket != "" {
		parts = append(parts, "the keys of ssh-agent")
	}
	parts = append(parts, a.names...)
	return strings.Join(parts, ", ")
}
