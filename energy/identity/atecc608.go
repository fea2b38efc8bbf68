package identity

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pikit/pikit/internal/devspec"
	"periph.io/x/conn/v3/i2c"
)

// This file is the portable part of the ATECC608 driver: the command
// protocol over any i2c.Bus, so that its tests run anywhere against periph's
// i2ctest.Playback and the simulated chip (sim.go). atecc608_linux.go
// registers the "atecc608" spec driver with the real I²C buses.
//
// Protocol (Microchip cryptoauthlib, calib_*.c): the chip sleeps until SDA
// is held low for 60 µs or more, answers the wake-up with the status packet
// 04 11 33 43, then takes command packets written at word address 0x03:
//
//	03 COUNT OPCODE P1 P2lo P2hi DATA... CRClo CRChi    (COUNT = 7 + len(DATA))
//
// and, once the command has executed (it NACKs its address until then),
// gives a response COUNT DATA... CRClo CRChi, where a 4-byte response is a
// status. Writing word address 0x02 sends it to idle, which keeps the
// message digest buffer but stops its watchdog (about 1.3 s after a
// wake-up the chip goes to sleep by itself, losing volatile state).

// I²C addresses of the chip (7-bit). cryptoauthlib and the original gateway
// give them in 8-bit form: 0xC0 and 0x6A.
const (
	// ATECCDefaultAddr is the factory address of ATECC608 chips.
	ATECCDefaultAddr uint16 = 0x60
	// ATECCFallbackAddr is the address of the Sourceful gateway's
	// pre-configured chips, tried when none answers at ATECCDefaultAddr.
	ATECCFallbackAddr uint16 = 0x35
)

// Word addresses: the first byte of every write.
const (
	wordReset   byte = 0x00
	wordSleep   byte = 0x01
	wordIdle    byte = 0x02
	wordCommand byte = 0x03
)

// Opcodes and modes of the commands this driver uses.
const (
	opRead   byte = 0x02
	opNonce  byte = 0x16
	opRandom byte = 0x1B
	opInfo   byte = 0x30
	opGenKey byte = 0x40
	opSign   byte = 0x41

	readZoneConfig32 byte = 0x80 // config zone, 32-byte read
	randomSeedUpdate byte = 0x00
	nonceModeMsgDig  byte = 0x03 | 0x40 // pass-through, target Message Digest Buffer (608)
	genKeyPublic     byte = 0x00        // public key of an existing private key
	signExternalMD   byte = 0x80 | 0x20 // external message, source Message Digest Buffer (608)

	keySlot uint16 = 0
)

// Status codes: the data byte of a 4-byte response.
const (
	StatusSuccess      byte = 0x00
	StatusMiscompare   byte = 0x01 // CheckMac or Verify failed
	StatusParseError   byte = 0x03 // bad opcode, mode or length
	StatusECCFault     byte = 0x05 // the ECC computation failed; retry
	StatusSelfTest     byte = 0x07 // self-test failed
	StatusHealthTest   byte = 0x08 // random number generator health test failed
	StatusExecution    byte = 0x0F // command not allowed (configuration, missing nonce...)
	StatusAfterWake    byte = 0x11 // the reply to a wake-up, not an error
	StatusCommsError   byte = 0xFF // the chip received a packet with a bad CRC
	statusPacketLength      = 4
)

var statusNames = map[byte]string{
	StatusMiscompare: "checkmac/verify miscompare",
	StatusParseError: "parse error",
	StatusECCFault:   "ECC fault",
	StatusSelfTest:   "self-test error",
	StatusHealthTest: "RNG health test error",
	StatusExecution:  "execution error",
	StatusAfterWake:  "after wake (command not executed)",
	StatusCommsError: "CRC or communication error",
}

// StatusError is an error status returned by the chip.
//
// errors.Is(err, &StatusError{Code: StatusExecution}) matches any command's
// status 0x0F; set Op too to match one command.
type StatusError struct {
	Op   string // the command: "info", "read", "random", "nonce", "genkey", "sign", "wake"
	Code byte
}

func (e *StatusError) Error() string {
	name := statusNames[e.Code]
	if name == "" {
		name = "unknown status"
	}
	if e.Op == "" {
		return fmt.Sprintf("identity: atecc608: %s (status %#02x)", name, e.Code)
	}
	return fmt.Sprintf("identity: atecc608: %s: %s (status %#02x)", e.Op, name, e.Code)
}

// Is matches a target *StatusError with the same Code and, if the target
// names one, the same Op.
func (e *StatusError) Is(target error) bool {
	t, ok := target.(*StatusError)
	return ok && t.Code == e.Code && (t.Op == "" || t.Op == e.Op)
}

// ErrCRC is wrapped by the errors for a response whose CRC is wrong.
var ErrCRC = errors.New("identity: atecc608: bad CRC in response")

// wakeReply is the status packet of a chip that just woke up.
var wakeReply = []byte{0x04, StatusAfterWake, 0x33, 0x43}

// opSpec describes a command for errors and timing.
type opSpec struct {
	name string
	// max is the longest execution time at any clock divider (cryptoauthlib
	// calib_execution.c: M0 for most commands; M2 for GenKey and Sign).
	// Polling stops at the first answer, so a generous bound costs nothing
	// on a working chip.
	max time.Duration
}

var opSpecs = map[byte]opSpec{
	opInfo:   {"info", 5 * time.Millisecond},
	opRead:   {"read", 5 * time.Millisecond},
	opNonce:  {"nonce", 20 * time.Millisecond},
	opRandom: {"random", 23 * time.Millisecond},
	opGenKey: {"genkey", 653 * time.Millisecond},
	opSign:   {"sign", 665 * time.Millisecond},
}

// pollSlack is added to the execution time before polling gives up, for
// the time the host takes to schedule the reads.
const pollSlack = 50 * time.Millisecond

// ATECCOptions configures the ATECC608 driver. The zero value is the
// defaults, those of cryptoauthlib.
type ATECCOptions struct {
	// WakeAttempts is how many times a wake-up is tried before giving up
	// (default 3).
	WakeAttempts int
	// WakeDelay is the wait between the wake pulse and reading the wake
	// reply (default 1.5 ms).
	WakeDelay time.Duration
	// WakeRetryDelay is the pause before another wake attempt, for a chip
	// still running its power-on self test (default 25 ms).
	WakeRetryDelay time.Duration
	// FirstPoll is the wait after sending a command before the first read
	// of its result (default 1 ms); PollInterval the wait between further
	// reads while the chip is busy (default 2 ms). Polling gives up after
	// the command's maximum execution time plus 50 ms.
	FirstPoll    time.Duration
	PollInterval time.Duration
}

func (o ATECCOptions) withDefaults() ATECCOptions {
	if o.WakeAttempts <= 0 {
		o.WakeAttempts = 3
	}
	if o.WakeDelay <= 0 {
		o.WakeDelay = 1500 * time.Microsecond
	}
	if o.WakeRetryDelay <= 0 {
		o.WakeRetryDelay = 25 * time.Millisecond
	}
	if o.FirstPoll <= 0 {
		o.FirstPoll = time.Millisecond
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 2 * time.Millisecond
	}
	return o
}

// ATECC608 is an identity whose key is in slot 0 of a Microchip ATECC608
// (A or B) secure element: the key never leaves the chip, which signs
// digests. It is safe for concurrent use: one transaction (wake-up,
// commands, idle) at a time.
//
// The bus must run at 100 kHz or less (the Raspberry Pi default), or the
// wake pulse (a zero byte written to address 0x00) is too short to wake the
// chip.
type ATECC608 struct {
	bus     i2c.Bus
	addr    uint16
	opts    ATECCOptions
	keyType string

	revision [4]byte
	serial   [9]byte
	pubXY    [64]byte
	pub      *ecdsa.PublicKey

	mu      *sync.Mutex // one transaction at a time, shared by handles on one chip
	state   sync.Mutex  // guards closed
	closed  bool
	onClose func() error

	// sleep waits between transfers; sleepCtx unless a test replaces it.
	sleep func(ctx context.Context, d time.Duration) error
}

var _ Identity = (*ATECC608)(nil)

// NewATECC608 wakes the ATECC608 at addr on bus, checks that it is an
// ATECC608, and reads its serial number and the public key of slot 0.
// When no chip answers the wake-up, the error wraps ErrNoChip. The bus
// belongs to the caller: Close leaves it open.
func NewATECC608(bus i2c.Bus, addr uint16, opts ATECCOptions) (*ATECC608, error) {
	return newATECC(context.Background(), bus, addr, opts, KeyTypeATECC608, nil, nil)
}

func newATECC(ctx context.Context, bus i2c.Bus, addr uint16, opts ATECCOptions, keyType string, mu *sync.Mutex, onClose func() error) (*ATECC608, error) {
	if bus == nil {
		return nil, errors.New("identity: atecc608: nil bus")
	}
	if addr == 0 || addr > 0x7f {
		return nil, fmt.Errorf("identity: atecc608: address %#x is not a 7-bit I²C address", addr)
	}
	if mu == nil {
		mu = new(sync.Mutex)
	}
	a := &ATECC608{bus: bus, addr: addr, opts: opts.withDefaults(), keyType: keyType, mu: mu, onClose: onClose, sleep: sleepCtx}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.wake(ctx); err != nil {
		return nil, err
	}
	err := a.identify(ctx)
	a.idle()
	if err != nil {
		return nil, err
	}
	return a, nil
}

// identify reads the revision, serial number and public key.
func (a *ATECC608) identify(ctx context.Context) error {
	rev, err := a.command(ctx, opInfo, 0x00, 0x0000, nil, 4)
	if err != nil {
		return err
	}
	copy(a.revision[:], rev)
	if rev[2] != 0x60 {
		kind := "unknown device"
		switch rev[2] {
		case 0x50:
			kind = "ATECC508A"
		case 0x00:
			kind = "ATSHA204A or ATECC108A"
		}
		return fmt.Errorf("identity: atecc608: the chip at %#x is not an ATECC608 (revision % x: %s)", a.addr, rev, kind)
	}
	cfg, err := a.command(ctx, opRead, readZoneConfig32, 0x0000, nil, 32)
	if err != nil {
		return err
	}
	copy(a.serial[:4], cfg[0:4])
	copy(a.serial[4:], cfg[8:13])
	xy, err := a.command(ctx, opGenKey, genKeyPublic, keySlot, nil, 64)
	if err != nil {
		return err
	}
	pub, err := ecdsaPublicFromXY(xy)
	if err != nil {
		return fmt.Errorf("identity: atecc608: public key of slot %d: %w", keySlot, err)
	}
	copy(a.pubXY[:], xy)
	a.pub = pub
	return nil
}

// ecdsaPublicFromXY checks that X||Y is a point of P-256 and returns it.
func ecdsaPublicFromXY(xy []byte) (*ecdsa.PublicKey, error) {
	if len(xy) != 64 {
		return nil, fmt.Errorf("%d bytes, want 64", len(xy))
	}
	if _, err := ecdh.P256().NewPublicKey(append([]byte{0x04}, xy...)); err != nil {
		return nil, errors.New("not a point of P-256")
	}
	return &ecdsa.PublicKey{
		Curve: elliptic.P256(),
		X:     new(big.Int).SetBytes(xy[:32]),
		Y:     new(big.Int).SetBytes(xy[32:]),
	}, nil
}

// Public returns the *ecdsa.PublicKey of slot 0.
func (a *ATECC608) Public() crypto.PublicKey { return a.pub }

// PublicKeyBytes returns the public key of slot 0 as X||Y (64 bytes), the
// form the chip and the original gateway's /api/crypto use.
func (a *ATECC608) PublicKeyBytes() []byte { return bytes.Clone(a.pubXY[:]) }

// Serial returns the chip's 9-byte serial number in hex (18 digits).
func (a *ATECC608) Serial() string { return hex.EncodeToString(a.serial[:]) }

// Revision returns the 4 bytes of the Info command (e.g. 00 00 60 02 for
// an ATECC608A, 00 00 60 03 for an ATECC608B).
func (a *ATECC608) Revision() [4]byte { return a.revision }

// Addr returns the chip's 7-bit I²C address.
func (a *ATECC608) Addr() uint16 { return a.addr }

// KeyType returns "atecc608", or "sim" for the simulated chip.
func (a *ATECC608) KeyType() string { return a.keyType }

// Sign signs a SHA-256 digest with the key in slot 0 and returns an ASN.1
// DER signature. The chip draws its own randomness: rand is ignored.
func (a *ATECC608) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := checkDigest(digest, opts); err != nil {
		return nil, err
	}
	return a.SignContext(context.Background(), digest)
}

// SignContext is Sign with a context, which cancels the waits between the
// steps (not a transfer in progress). digest must be a 32-byte SHA-256.
func (a *ATECC608) SignContext(ctx context.Context, digest []byte) ([]byte, error) {
	if len(digest) != 32 {
		return nil, fmt.Errorf("identity: Sign: digest of %d bytes, want a 32-byte SHA-256 digest", len(digest))
	}
	a.state.Lock()
	closed := a.closed
	a.state.Unlock()
	if closed {
		return nil, ErrClosed
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.wake(ctx); err != nil {
		return nil, err
	}
	rs, err := a.sign(ctx, digest)
	a.idle()
	if err != nil {
		return nil, err
	}
	return rsToDER(rs)
}

// sign runs calib_sign's sequence: Random (seed update), Nonce pass-through
// of the digest into the message digest buffer, Sign from that buffer.
func (a *ATECC608) sign(ctx context.Context, digest []byte) ([]byte, error) {
	if _, err := a.command(ctx, opRandom, randomSeedUpdate, 0x0000, nil, 32); err != nil {
		return nil, err
	}
	if _, err := a.command(ctx, opNonce, nonceModeMsgDig, 0x0000, digest, 1); err != nil {
		return nil, err
	}
	return a.command(ctx, opSign, signExternalMD, keySlot, nil, 64)
}

// Close stops further signing and, for a chip opened from a spec, closes
// its bus once a signature in progress has finished.
func (a *ATECC608) Close() error {
	a.state.Lock()
	if a.closed {
		a.state.Unlock()
		return nil
	}
	a.closed = true
	a.state.Unlock()
	// Wait for a transaction in progress before closing its bus.
	a.mu.Lock()
	onClose := a.onClose
	a.mu.Unlock()
	if onClose != nil {
		return onClose()
	}
	return nil
}

// wake wakes the chip: a zero byte written to the general-call address 0x00
// holds SDA low long enough at 100 kHz (the write is not acknowledged, so
// its error is ignored), then the wake reply 04 11 33 43 is read. A chip
// that is already awake (a previous process died between commands) answers
// with whatever its output buffer holds; it is sent to idle so that the
// next attempt wakes it afresh. a.mu must be held.
func (a *ATECC608) wake(ctx context.Context) error {
	var last error
	for i := 0; i < a.opts.WakeAttempts; i++ {
		if i > 0 {
			if err := a.sleep(ctx, a.opts.WakeRetryDelay); err != nil {
				return err
			}
		}
		_ = a.bus.Tx(0x00, []byte{0x00}, nil)
		if err := a.sleep(ctx, a.opts.WakeDelay); err != nil {
			return err
		}
		var r [4]byte
		if err := a.bus.Tx(a.addr, nil, r[:]); err != nil {
			last = err
			continue
		}
		if bytes.Equal(r[:], wakeReply) {
			return nil
		}
		if _, err := parseResponse(r[:]); err != nil {
			var se *StatusError
			if errors.As(err, &se) && (se.Code == StatusSelfTest || se.Code == StatusHealthTest) {
				se.Op = "wake"
				return se
			}
		}
		last = fmt.Errorf("unexpected wake reply % x", r)
		a.idle()
	}
	return fmt.Errorf("%w at %#x on %s after %d wake-ups (check wiring and address with i2cdetect; the bus must run at 100 kHz or less): %v",
		ErrNoChip, a.addr, a.bus, a.opts.WakeAttempts, last)
}

// idle sends the chip to idle, keeping its volatile state but stopping the
// watchdog. Errors are ignored: an idle chip NACKs nothing, and a chip that
// missed it goes to sleep by itself.
func (a *ATECC608) idle() {
	_ = a.bus.Tx(a.addr, []byte{wordIdle}, nil)
}

// command sends a command, polls for its response, checks it and returns
// its data, which must be want bytes long (1 for a status). a.mu must be
// held.
func (a *ATECC608) command(ctx context.Context, op, p1 byte, p2 uint16, data []byte, want int) ([]byte, error) {
	spec := opSpecs[op]
	pkt := buildPacket(op, p1, p2, data)
	if err := a.bus.Tx(a.addr, pkt, nil); err != nil {
		return nil, fmt.Errorf("identity: atecc608: %s: send: %w", spec.name, err)
	}
	resp, err := a.receive(ctx, spec, want)
	if err != nil {
		return nil, err
	}
	out, err := parseResponse(resp)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) {
			se.Op = spec.name
			return nil, se
		}
		return nil, fmt.Errorf("identity: atecc608: %s: %w", spec.name, err)
	}
	if want == 1 {
		if out[0] != StatusSuccess { // parseResponse returns errors for the others
			return nil, &StatusError{Op: spec.name, Code: out[0]}
		}
		return out, nil
	}
	if len(out) != want {
		return nil, fmt.Errorf("identity: atecc608: %s: %d bytes of response data, want %d", spec.name, len(out), want)
	}
	return out, nil
}

// receive polls for a response of up to want data bytes: first its count
// byte (the chip NACKs while busy), then the rest.
func (a *ATECC608) receive(ctx context.Context, spec opSpec, want int) ([]byte, error) {
	deadline := time.Now().Add(spec.max + pollSlack)
	if err := a.sleep(ctx, a.opts.FirstPoll); err != nil {
		return nil, err
	}
	maxCount := max(want+3, statusPacketLength)
	for {
		var c [1]byte
		err := a.bus.Tx(a.addr, nil, c[:])
		if err == nil {
			n := int(c[0])
			if n < statusPacketLength || n > maxCount {
				return nil, fmt.Errorf("identity: atecc608: %s: response count %d, want 4 to %d", spec.name, n, maxCount)
			}
			resp := make([]byte, n)
			resp[0] = c[0]
			if err := a.bus.Tx(a.addr, nil, resp[1:]); err != nil {
				return nil, fmt.Errorf("identity: atecc608: %s: read response: %w", spec.name, err)
			}
			return resp, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("identity: atecc608: %s: no response within %s: %w", spec.name, spec.max+pollSlack, err)
		}
		if err := a.sleep(ctx, a.opts.PollInterval); err != nil {
			return nil, err
		}
	}
}

// buildPacket returns the write of a command: word address 0x03, count,
// opcode, param1, param2 (little-endian), data, CRC (little-endian) over
// count..data.
func buildPacket(op, p1 byte, p2 uint16, data []byte) []byte {
	pkt := make([]byte, 0, 8+len(data))
	pkt = append(pkt, wordCommand, byte(7+len(data)), op, p1, byte(p2), byte(p2>>8))
	pkt = append(pkt, data...)
	crc := crc16(pkt[1:])
	return append(pkt, byte(crc), byte(crc>>8))
}

// parseResponse checks a response packet (count, data, CRC) and returns its
// data. A 4-byte packet is a status: success returns its single byte, an
// error status a *StatusError (the wake reply 0x11 included).
func parseResponse(b []byte) ([]byte, error) {
	if len(b) < statusPacketLength {
		return nil, fmt.Errorf("response of %d bytes, want at least 4", len(b))
	}
	if int(b[0]) != len(b) {
		return nil, fmt.Errorf("response count %d for %d bytes", b[0], len(b))
	}
	n := len(b)
	crc := crc16(b[:n-2])
	if b[n-2] != byte(crc) || b[n-1] != byte(crc>>8) {
		return nil, fmt.Errorf("%w (% x, want %02x %02x)", ErrCRC, b, byte(crc), byte(crc>>8))
	}
	data := b[1 : n-2]
	if n == statusPacketLength && data[0] != StatusSuccess {
		return nil, &StatusError{Code: data[0]}
	}
	return data, nil
}

// crc16 is the CRC of the ATECC family (cryptoauthlib atCRC): polynomial
// 0x8005, initial value 0, data bits taken least significant first, no
// final XOR. It goes on the wire little-endian.
func crc16(data []byte) uint16 {
	var crc uint16
	for _, b := range data {
		for i := 0; i < 8; i++ {
			bit := uint16(b>>i) & 1
			top := crc >> 15
			crc <<= 1
			if bit != top {
				crc ^= 0x8005
			}
		}
	}
	return crc
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
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

const (
	// ateccUsage is the accepted spec form, quoted in argument errors.
	ateccUsage = "atecc608:BUS[@0xADDR], e.g. atecc608:/dev/i2c-1 or atecc608:/dev/i2c-1@0x35"
	// i2cPermHint ends permission errors on /dev/i2c-N.
	i2cPermHint = `add the user to group i2c (sudo adduser $USER i2c, then log in again) and enable I²C with "dtparam=i2c_arm=on" in /boot/firmware/config.txt`
)

// ateccSpec is a parsed "atecc608:" spec argument.
type ateccSpec struct {
	bus   string   // as given: "/dev/i2c-1", "I2C1" or "1"
	addrs []uint16 // addresses to try, in order
}

// parseATECCSpec parses BUS[@0xADDR]. BUS is anything periph's i2creg
// accepts ("/dev/i2c-1", "I2C1", "1"); ADDR is the chip's 7-bit address in
// hexadecimal with a 0x prefix. Without it, 0x60 and then 0x35 are tried.
func parseATECCSpec(arg string) (ateccSpec, error) {
	target, _, err := devspec.ParseArg(arg)
	if err != nil {
		return ateccSpec{}, fmt.Errorf("identity: atecc608: %w; want %s", err, ateccUsage)
	}
	s := ateccSpec{bus: target, addrs: []uint16{ATECCDefaultAddr, ATECCFallbackAddr}}
	if i := strings.LastIndex(target, "@"); i >= 0 {
		s.bus = target[:i]
		addr, err := parseATECCAddr(target[i+1:])
		if err != nil {
			return ateccSpec{}, err
		}
		s.addrs = []uint16{addr}
	}
	if s.bus == "" {
		return ateccSpec{}, fmt.Errorf("identity: atecc608: %q names no I²C bus; want %s", arg, ateccUsage)
	}
	if strings.ContainsFunc(s.bus, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '@' }) {
		return ateccSpec{}, fmt.Errorf("identity: atecc608: bad I²C bus name %q; want e.g. /dev/i2c-1, I2C1 or 1", s.bus)
	}
	return s, nil
}

func parseATECCAddr(s string) (uint16, error) {
	h, ok := strings.CutPrefix(strings.ToLower(s), "0x")
	if !ok {
		return 0, fmt.Errorf("identity: atecc608: address %q must be hexadecimal with a 0x prefix, e.g. 0x60", s)
	}
	v, err := strconv.ParseUint(h, 16, 16)
	if err != nil {
		return 0, fmt.Errorf("identity: atecc608: bad address %q; want e.g. 0x60", s)
	}
	if v > 0x77 && v <= 0xFE && v%2 == 0 {
		return 0, fmt.Errorf("identity: atecc608: address %q looks like an 8-bit address (as cryptoauthlib writes them); use the 7-bit %#x", s, v>>1)
	}
	if v < 0x08 || v > 0x77 {
		return 0, fmt.Errorf("identity: atecc608: address %q outside the 7-bit range 0x08 to 0x77", s)
	}
	return uint16(v), nil
}
