package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestOpenFileGenerates(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "device-key.pem")
	id, err := Open("file:" + path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if blk, _ := pem.Decode(b); blk == nil || blk.Type != "EC PRIVATE KEY" {
		t.Errorf("key file is not a PEM EC PRIVATE KEY:\n%s", b)
	}
	if matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".device-key-*")); len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}
	if id.KeyType() != "software" {
		t.Errorf("KeyType() = %q", id.KeyType())
	}

	// The serial is the first 9 bytes of SHA-256(X||Y).
	pub := id.Public().(*ecdsa.PublicKey)
	xy, err := publicXY(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(xy)
	if got, want := id.Serial(), hex.EncodeToString(sum[:9]); got != want || len(got) != 18 {
		t.Errorf("Serial() = %s, want %s", got, want)
	}

	d := digestOf("reading")
	sig, err := id.Sign(rand.Reader, d, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(pub, d, sig) {
		t.Error("signature does not verify")
	}
	if _, err := id.Sign(nil, d[:20], crypto.SHA256); err == nil {
		t.Error("Sign accepted a 20-byte digest")
	}
	if _, err := id.Sign(nil, d, crypto.SHA512); err == nil {
		t.Error("Sign accepted SHA-512 opts")
	}

	// Reopening loads the same key.
	again, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if again.Serial() != id.Serial() || !pub.Equal(again.Public()) {
		t.Error("reopened key differs")
	}
	if err := id.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := id.Sign(nil, d, crypto.SHA256); !errors.Is(err, ErrClosed) {
		t.Errorf("Sign after Close: %v", err)
	}
}

func TestOpenFileConcurrentCreate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "k.pem")
	const n = 8
	serials := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := OpenFile(path)
			if err != nil {
				t.Error(err)
				return
			}
			serials[i] = id.Serial()
		}()
	}
	wg.Wait()
	for _, s := range serials[1:] {
		if s != serials[0] {
			t.Fatalf("concurrent first starts got different keys: %v", serials)
		}
	}
}

func writeKey(t *testing.T, data []byte, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return path
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestOpenFileFormats(t *testing.T) {
	t.Parallel()
	key := testKey(t)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalECPrivateKey(p384)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsaPKCS8, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	// openssl ecparam -genkey without -noout writes the curve first.
	params := pemOf("EC PARAMETERS", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07})

	for _, tc := range []struct {
		name string
		data []byte
		err  string
	}{
		{"SEC1", []byte(testKeyPEM), ""},
		{"PKCS#8", pemOf("PRIVATE KEY", pkcs8), ""},
		{"with EC PARAMETERS", append(params, testKeyPEM...), ""},
		{"empty", nil, `no PEM "EC PRIVATE KEY" or "PRIVATE KEY" block`},
		{"not PEM", []byte("hello"), `no PEM "EC PRIVATE KEY" or "PRIVATE KEY" block`},
		{"public key", pemOf("PUBLIC KEY", []byte{1}), `PEM block "PUBLIC KEY" is not a private key`},
		{"garbage DER", pemOf("EC PRIVATE KEY", []byte{1, 2, 3}), "bad EC PRIVATE KEY"},
		{"P-384", pemOf("EC PRIVATE KEY", p384DER), "curve P-384, want P-256"},
		{"RSA", pemOf("PRIVATE KEY", rsaPKCS8), "*rsa.PrivateKey key, want ECDSA P-256"},
		{"encrypted", pemOf("ENCRYPTED PRIVATE KEY", []byte{1}), "the key is encrypted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeKey(t, tc.data, 0o600)
			id, err := OpenFile(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), path) {
					t.Fatalf("error %v, want %q naming the file", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !key.PublicKey.Equal(id.Public()) {
				t.Error("loaded another key")
			}
		})
	}
}

func TestOpenFileRefusesOpenModes(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("Windows files have no group/other mode bits")
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o602} {
		path := writeKey(t, []byte(testKeyPEM), mode)
		_, err := OpenFile(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) || !strings.Contains(err.Error(), "accessible by group or others") {
			t.Errorf("mode %04o: error %v", mode, err)
		}
	}
	// 0400 is private enough.
	if _, err := OpenFile(writeKey(t, []byte(testKeyPEM), 0o400)); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
}

func TestOpenFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := OpenFile(filepath.Join(dir, "missing", "key.pem")); err == nil || !strings.Contains(err.Error(), "create key file") {
		t.Errorf("missing directory: %v", err)
	}
	if _, err := OpenFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	if _, err := Open("file:"); err == nil || !strings.Contains(err.Error(), "no path") {
		t.Errorf(`Open("file:"): %v`, err)
	}
	if _, err := NewSoftware(nil); err == nil {
		t.Error("NewSoftware(nil) succeeded")
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := NewSoftware(p384); err == nil {
		t.Error("NewSoftware(P-384) succeeded")
	}
}
