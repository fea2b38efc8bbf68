package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/pikit/pikit/internal/devspec"
)

func init() {
	registry.MustRegister(devspec.Driver[Identity]{
		Name:  "file",
		Usage: "file:PATH (P-256 key, PEM; created 0600 if missing)",
		Open: func(arg string) (Identity, error) {
			if arg == "" {
				return nil, errors.New("identity: file: no path; want file:PATH, e.g. file:/var/lib/pikit/device-key.pem")
			}
			s, err := OpenFile(arg)
			if err != nil {
				// Not s: a nil *Software in an Identity is not a nil Identity.
				return nil, err
			}
			return s, nil
		},
	})
}

// Software is an identity whose key is held in memory, loaded from a key
// file by OpenFile or given to NewSoftware.
type Software struct {
	key    *ecdsa.PrivateKey
	serial string

	mu     sync.Mutex
	closed bool
}

var _ Identity = (*Software)(nil)

// NewSoftware returns the identity of a P-256 private key.
func NewSoftware(key *ecdsa.PrivateKey) (*Software, error) {
	if key == nil {
		return nil, errors.New("identity: nil key")
	}
	if key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("identity: key on curve %s, want P-256", key.Curve.Params().Name)
	}
	raw, err := publicXY(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	return &Software{key: key, serial: hex.EncodeToString(sum[:9])}, nil
}

// publicXY returns the 64-byte X||Y encoding of a P-256 public key.
func publicXY(pub *ecdsa.PublicKey) ([]byte, error) {
	e, err := pub.ECDH()
	if err != nil {
		return nil, fmt.Errorf("identity: invalid public key: %w", err)
	}
	return e.Bytes()[1:], nil // drop the 0x04 "uncompressed" prefix
}

// OpenFile loads the P-256 key in the PEM file at path ("EC PRIVATE KEY",
// as written by OpenFile and "openssl ecparam -genkey", or PKCS#8 "PRIVATE
// KEY", as written by "openssl genpkey"), or, when the file does not exist,
// generates a key and writes it there with mode 0600. The directory must
// exist.
//
// A key file readable or writable by the group or others is refused (except
// on Windows, which has no such mode bits): whoever can read the key can
// sign readings as this device.
func OpenFile(path string) (*Software, error) {
	key, err := loadKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createKey(path)
	}
	if err != nil {
		return nil, err
	}
	return NewSoftware(key)
}

func loadKey(path string) (*ecdsa.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("identity: key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("identity: key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("identity: key file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("identity: key file %s has mode %04o, accessible by group or others; the device key must be private: chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("identity: key file: %w", err)
	}
	key, err := parseKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("identity: key file %s: %w", path, err)
	}
	return key, nil
}

// parseKeyPEM finds the private key in PEM data, skipping the "EC
// PARAMETERS" block openssl writes before it.
func parseKeyPEM(b []byte) (*ecdsa.PrivateKey, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New(`no PEM "EC PRIVATE KEY" or "PRIVATE KEY" block (want a P-256 key in PEM)`)
		}
		if _, encrypted := blk.Headers["Proc-Type"]; encrypted {
			return nil, errors.New("the key is encrypted; store it unencrypted with mode 0600")
		}
		var key any
		var err error
		switch blk.Type {
		case "EC PARAMETERS":
			continue
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(blk.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the key is encrypted; store it unencrypted with mode 0600")
		default:
			return nil, fmt.Errorf("PEM block %q is not a private key; want \"EC PRIVATE KEY\" or \"PRIVATE KEY\"", blk.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("bad %s: %w", blk.Type, err)
		}
		ec, ok := key.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%T key, want ECDSA P-256", key)
		}
		if ec.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA key on curve %s, want P-256", ec.Curve.Params().Name)
		}
		return ec, nil
	}
}

// createKey generates a key and writes it to path, unless another process
// got there first, in which case that key is loaded. The file appears
// complete or not at all: it is written to a temporary file, synced, and
// hard-linked into place (link, unlike rename, fails if path exists).
func createKey(path string) (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: generate key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("identity: generate key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})

	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".device-key-*.tmp") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("identity: create key file: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	if err := tmp.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		tmp.Close()
		return nil, fmt.Errorf("identity: create key file: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("identity: write key file: %w", err)
	}
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadKey(path)
		}
		// File systems without hard links: rename, which could replace
		// a key created at this very moment by another process; the
		// check narrows that window to nothing in practice.
		if _, serr := os.Lstat(path); serr == nil {
			return loadKey(path)
		}
		if err := os.Rename(tmpName, path); err != nil {
			return nil, fmt.Errorf("identity: create key file: %w", err)
		}
	}
	syncDir(dir)
	return key, nil
}

// syncDir makes a new directory entry durable; errors are ignored since not
// every platform can sync a directory.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Public returns the *ecdsa.PublicKey.
func (s *Software) Public() crypto.PublicKey { return &s.key.PublicKey }

// Serial returns the first 9 bytes of the SHA-256 of the public key (X||Y),
// in hex.
func (s *Software) Serial() string { return s.serial }

// KeyType returns "software".
func (s *Software) KeyType() string { return KeyTypeSoftware }

// Sign signs a SHA-256 digest and returns an ASN.1 DER signature. rand may
// be nil (crypto/rand is used).
func (s *Software) Sign(rnd io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := checkDigest(digest, opts); err != nil {
		return nil, err
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	return ecdsa.SignASN1(rnd, s.key, digest)
}

// Close makes further Sign calls fail. The key stays in the file.
func (s *Software) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// checkDigest enforces the crypto.Signer contract of this package: a
// 32-byte SHA-256 digest.
func checkDigest(digest []byte, opts crypto.SignerOpts) error {
	if opts == nil || opts.HashFunc() != crypto.SHA256 {
		return errors.New("identity: Sign needs opts with HashFunc() == crypto.SHA256")
	}
	if len(digest) != sha256.Size {
		return fmt.Errorf("identity: Sign: digest of %d bytes, want a 32-byte SHA-256 digest", len(digest))
	}
	return nil
}
