// Package identity gives an energy gateway its device identity: an ECDSA
// P-256 key that signs the readings the gateway sends, and the device serial
// that names it. The key lives either in a Microchip ATECC608 secure element
// on the I²C bus (as on the original Sourceful gateway, which cannot leak
// it) or, on boards without one, in a software key file generated at first
// start.
//
// Every identity is a crypto.Signer. SignJWT builds the ES256 JWTs of the
// original gateway from a header (ReadingHeader) and a payload: the package
// deliberately offers no way to sign arbitrary caller-supplied bytes over
// the network, and a gateway built on it must not add one (the original
// gateway's /api/jwt/create let anyone on the LAN forge "production" data).
//
// Identities are opened from a one-line spec with Open, the same way in
// every pikit package:
//
//	file:/var/lib/pikit/device-key.pem   software key (created 0600 if missing)
//	atecc608:/dev/i2c-1                  ATECC608 at 0x60, else at 0x35 (Linux)
//	atecc608:/dev/i2c-1@0x35             ATECC608 at an explicit 7-bit address
//	sim                                  simulated ATECC608 with a throwaway key
//
// There is no "auto" spec: an identity must not silently fall back to a
// throwaway key. OpenDefault(dataDir) picks the chip when one answers, and
// otherwise the key file in the data directory.
package identity

import (
	"crypto"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pikit/pikit/internal/devspec"
)

// Identity is a device identity: a P-256 signing key and the device serial.
//
// Sign follows the crypto.Signer convention: digest is a SHA-256 digest (32
// bytes, opts.HashFunc() == crypto.SHA256) and the result is an ASN.1 DER
// ECDSA signature. Public returns an *ecdsa.PublicKey. Identities are safe
// for concurrent use; once closed, Sign returns ErrClosed.
type Identity interface {
	crypto.Signer
	// Serial returns the device serial in lower-case hex: the chip's 9-byte
	// serial number (18 hex digits) for an ATECC608, and the first 9 bytes
	// of the SHA-256 of the public key (X||Y) for a software key.
	Serial() string
	// KeyType returns "software", "atecc608" or "sim".
	KeyType() string
	// Close releases the key or the chip's bus.
	Close() error
}

// Key types returned by Identity.KeyType.
const (
	KeyTypeSoftware = "software"
	KeyTypeATECC608 = "atecc608"
	KeyTypeSim      = "sim"
)

// DefaultKeyFile is the name of the software key file OpenDefault uses in
// the data directory.
const DefaultKeyFile = "device-key.pem"

var (
	// ErrClosed is returned by Sign on a closed identity.
	ErrClosed = errors.New("identity: closed")
	// ErrNoChip is wrapped by the errors of NewATECC608 and Open when no
	// ATECC608 answers the wake-up at the address.
	ErrNoChip = errors.New("identity: no ATECC608 answers")
)

// Driver describes a way of opening an Identity from a spec; see Register.
type Driver struct {
	// Name is the spec prefix before the colon, e.g. "file".
	Name string
	// Usage shows the accepted form, for errors.
	Usage string
	// Open opens an identity from everything after "Name:".
	Open func(arg string) (Identity, error)
	// Detect is unused by this package ("auto" is refused, see Open) and
	// exists so that Driver has the shape of every pikit driver.
	Detect func() (arg string, ok bool)
}

// The fallback is never used: Open refuses "auto" before the registry sees
// it.
var registry = newRegistry()

func newRegistry() *devspec.Registry[Identity] {
	r := devspec.New[Identity]("identity", "file")
	r.SetNotice(nil)
	return r
}

// Register adds a driver so Open can select it by name. It is an error to
// register a name twice; registering must not access any device.
func Register(d Driver) error { return registry.Register(devspec.Driver[Identity](d)) }

// Drivers returns the registered drivers in registration order.
func Drivers() []Driver {
	ds := registry.Drivers()
	out := make([]Driver, len(ds))
	for i, d := range ds {
		out[i] = Driver(d)
	}
	return out
}

// errAuto explains why "auto" is refused.
var errAuto = errors.New(`identity: there is no "auto" identity (a signing key must not silently change); use OpenDefault(dataDir), or one of file:PATH, atecc608:/dev/i2c-N[@0xADDR], sim`)

func isAuto(spec string) bool {
	name, _, err := devspec.Split(spec)
	return err == nil && name == devspec.Auto
}

// Open opens an identity from a spec (see the package documentation).
func Open(spec string) (Identity, error) {
	if isAuto(spec) {
		return nil, errAuto
	}
	return registry.Open(spec)
}

// Resolve returns the concrete spec Open would use, without opening anything.
func Resolve(spec string) (string, error) {
	if isAuto(spec) {
		return "", errAuto
	}
	s, _, err := registry.Resolve(spec)
	return s, err
}

// OpenDefault opens the identity a gateway uses when none is configured: the
// ATECC608 on /dev/i2c-1 (at 0x60, else 0x35) when one answers the wake-up,
// otherwise the software key dataDir/device-key.pem, generated at the first
// start (dataDir is created 0700 if missing).
//
// Only the absence of an answering chip falls back to the key file. A chip
// that answers but then fails, or an I²C bus that exists but cannot be
// opened (permissions), is an error: falling back would silently change the
// device's identity. Probing writes nothing to other devices: the wake-up
// is a general-call write of a single zero byte, which the I²C
// specification reserves and devices ignore, followed by reads.
func OpenDefault(dataDir string) (Identity, error) {
	if probeDefaultChip != nil {
		id, err := probeDefaultChip()
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, ErrNoChip) && !errors.Is(err, errNoBus) {
			return nil, err
		}
	}
	if dataDir == "" {
		return nil, errors.New("identity: OpenDefault: empty data directory")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: OpenDefault: %w", err)
	}
	return OpenFile(filepath.Join(dataDir, DefaultKeyFile))
}

// probeDefaultChip opens the ATECC608 on the default bus; nil where the
// platform has no I²C driver (not Linux). It returns an error wrapping
// ErrNoChip or errNoBus when there is no chip to use.
var probeDefaultChip func() (Identity, error)

// errNoBus is returned by probeDefaultChip when the default bus does not
// exist.
var errNoBus = errors.New("identity: no I²C bus")
