package identity

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"
)

// testKeyPEM is a fixed P-256 key (openssl ecparam -name prime256v1
// -genkey -noout), so that the chip's responses below are constants.
const testKeyPEM = `-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIC7kfY69M6F1tkgRqGUqhD5V1XVxaLEhsvgP5SWSS4+doAoGCCqGSM49
AwEHoUQDQgAEaNGtL5l+5XII+9jbxYwvEBL1hohQaS75iTDLCqY4SYjZI+xhRCdk
W+NsmzXs7xYStCOfx5rqX6jso+QGj2H4nQ==
-----END EC PRIVATE KEY-----
`

func testKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := parseKeyPEM([]byte(testKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testSerial is the serial number of the simulated chips of the tests.
var testSerial = [9]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xee}

// fastOpts keeps the retry pauses of the fault tests short.
var fastOpts = ATECCOptions{WakeRetryDelay: time.Millisecond}

// The transfers of NewATECC608 at 0x60, byte for byte (CRCs computed once
// with crc16 and checked against cryptoauthlib's vectors in TestCRC16).
var (
	ioWake = []i2ctest.IO{
		{Addr: 0x00, W: []byte{0x00}},
		{Addr: 0x60, R: []byte{0x04, 0x11, 0x33, 0x43}},
	}
	ioInfo = []i2ctest.IO{
		{Addr: 0x60, W: []byte{0x03, 0x07, 0x30, 0x00, 0x00, 0x00, 0x03, 0x5d}},
		{Addr: 0x60, R: []byte{0x07}},
		{Addr: 0x60, R: []byte{0x00, 0x00, 0x60, 0x02, 0x80, 0x38}},
	}
	// Config zone block 0: SN 01 23 45 67 | rev 00 00 60 02 | SN 89 ab cd ef ee | ...
	ioReadConfig = []i2ctest.IO{
		{Addr: 0x60, W: []byte{0x03, 0x07, 0x02, 0x80, 0x00, 0x00, 0x09, 0xad}},
		{Addr: 0x60, R: []byte{0x23}},
		{Addr: 0x60, R: []byte{0x01, 0x23, 0x45, 0x67, 0x00, 0x00, 0x60, 0x02, 0x89, 0xab, 0xcd, 0xef, 0xee, 0x01, 0x01,
			0x00, 0xc0, 0x00, 0x00, 0x00, 0x83, 0x20, 0x87, 0x20, 0x8f, 0x20, 0xc4, 0x8f, 0x8f, 0x8f, 0x8f,
			0x8f, 0xec, 0x0f}},
	}
	// GenKey mode 0 slot 0: the public key X||Y of testKeyPEM.
	ioGenKey = []i2ctest.IO{
		{Addr: 0x60, W: []byte{0x03, 0x07, 0x40, 0x00, 0x00, 0x00, 0x00, 0x05}},
		{Addr: 0x60, R: []byte{0x43}},
		{Addr: 0x60, R: []byte{0x68, 0xd1, 0xad, 0x2f, 0x99, 0x7e, 0xe5, 0x72, 0x08, 0xfb, 0xd8, 0xdb, 0xc5, 0x8c, 0x2f,
			0x10, 0x12, 0xf5, 0x86, 0x88, 0x50, 0x69, 0x2e, 0xf9, 0x89, 0x30, 0xcb, 0x0a, 0xa6, 0x38, 0x49,
			0x88, 0xd9, 0x23, 0xec, 0x61, 0x44, 0x27, 0x64, 0x5b, 0xe3, 0x6c, 0x9b, 0x35, 0xec, 0xef, 0x16,
			0x12, 0xb4, 0x23, 0x9f, 0xc7, 0x9a, 0xea, 0x5f, 0xa8, 0xec, 0xa3, 0xe4, 0x06, 0x8f, 0x61, 0xf8,
			0x9d, 0x25, 0xdd}},
	}
	ioIdle = []i2ctest.IO{{Addr: 0x60, W: []byte{0x02}}}
)

// signDigest is SHA-256("pikit reading"), the digest of the sign sequence.
var signDigest = []byte{0xef, 0x64, 0x38, 0xba, 0xd3, 0xe8, 0x00, 0x27, 0x52, 0xdd, 0x8d, 0x88, 0x88, 0xb2, 0xd4, 0x34,
	0x0a, 0x82, 0xd6, 0xf3, 0xad, 0xf8, 0xff, 0x6c, 0xbb, 0x21, 0x32, 0xd0, 0x28, 0x71, 0xfd, 0x96}

var (
	// Random, mode 0 (seed update): 32 bytes the driver discards.
	ioRandom = []i2ctest.IO{
		{Addr: 0x60, W: []byte{0x03, 0x07, 0x1b, 0x00, 0x00, 0x00, 0x24, 0xcd}},
		{Addr: 0x60, R: []byte{0x23}},
		{Addr: 0x60, R: []byte{0xa4, 0x41, 0xb1, 0x5f, 0xe9, 0xa3, 0xcf, 0x56, 0x66, 0x11, 0x90, 0xa0, 0xb9, 0x3b, 0x9d,
			0xec, 0x7d, 0x04, 0x12, 0x72, 0x88, 0xcc, 0x87, 0x25, 0x09, 0x67, 0xcf, 0x3b, 0x52, 0x89, 0x4d,
			0x11, 0x7f, 0xc5}},
	}
	// Nonce mode 0x43 (pass-through to the message digest buffer), count
	// 0x27 = 7 + 32, then the success status 04 00 03 40.
	ioNonce = []i2ctest.IO{
		{Addr: 0x60, W: []byte{0x03, 0x27, 0x16, 0x43, 0x00, 0x00, 0xef, 0x64, 0x38, 0xba, 0xd3, 0xe8, 0x00, 0x27, 0x52, 0xdd,
			0x8d, 0x88, 0x88, 0xb2, 0xd4, 0x34, 0x0a, 0x82, 0xd6, 0xf3, 0xad, 0xf8, 0xff, 0x6c, 0xbb, 0x21,
			0x32, 0xd0, 0x28, 0x71, 0xfd, 0x96, 0x25, 0x99}},
		{Addr: 0x60, R: []byte{0x04}},
		{Addr: 0x60, R: []byte{0x00, 0x03, 0x40}},
	}
	// Sign mode 0xA0 slot 0: r||s, a signature of signDigest by testKeyPEM.
	ioSign = []i2ctest.IO{
		{Addr: 0x60, W: []byte{0x03, 0x07, 0x41, 0xa0, 0x00, 0x00, 0x7b, 0x85}},
		{Addr: 0x60, R: []byte{0x43}},
		{Addr: 0x60, R: []byte{0xa8, 0x87, 0x65, 0xc9, 0x1a, 0xc7, 0x05, 0xa4, 0x6b, 0x0b, 0x41, 0x3f, 0x8a, 0xdb, 0x28,
			0x11, 0xb1, 0x9d, 0x7c, 0x9f, 0x0a, 0xbf, 0x89, 0x28, 0xba, 0x2b, 0x63, 0x42, 0x63, 0x2c, 0x94,
			0x50, 0x7d, 0xba, 0xbc, 0xe7, 0xaf, 0x17, 0x3b, 0xf2, 0xb9, 0x1b, 0xd3, 0xc4, 0x25, 0x72, 0x06,
			0x7c, 0xfe, 0x6f, 0x1c, 0x81, 0xa9, 0xa1, 0xbc, 0x83, 0xe6, 0x2f, 0x5f, 0x9a, 0x02, 0x4e, 0x33,
			0xae, 0x1d, 0x62}},
	}
	// signDER is that signature in ASN.1.
	signDER = []byte{0x30, 0x45, 0x02, 0x21, 0x00, 0xa8, 0x87, 0x65, 0xc9, 0x1a, 0xc7, 0x05, 0xa4, 0x6b, 0x0b, 0x41,
		0x3f, 0x8a, 0xdb, 0x28, 0x11, 0xb1, 0x9d, 0x7c, 0x9f, 0x0a, 0xbf, 0x89, 0x28, 0xba, 0x2b, 0x63,
		0x42, 0x63, 0x2c, 0x94, 0x50, 0x02, 0x20, 0x7d, 0xba, 0xbc, 0xe7, 0xaf, 0x17, 0x3b, 0xf2, 0xb9,
		0x1b, 0xd3, 0xc4, 0x25, 0x72, 0x06, 0x7c, 0xfe, 0x6f, 0x1c, 0x81, 0xa9, 0xa1, 0xbc, 0x83, 0xe6,
		0x2f, 0x5f, 0x9a, 0x02, 0x4e, 0x33, 0xae}
)

func ops(groups ...[]i2ctest.IO) []i2ctest.IO {
	var out []i2ctest.IO
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

func checkConsumed(t *testing.T, pb *i2ctest.Playback) {
	t.Helper()
	pb.Lock()
	defer pb.Unlock()
	if pb.Count != len(pb.Ops) {
		t.Fatalf("made %d of %d expected I²C transfers", pb.Count, len(pb.Ops))
	}
}

func TestCRC16(t *testing.T) {
	t.Parallel()
	// Vectors of cryptoauthlib's tools/atca_crc.py: the CRC covers the
	// count byte through the data and goes on the wire little-endian.
	for _, v := range [][]byte{
		{0x07, 0x30, 0x00, 0x00, 0x00, 0x03, 0x5d}, // Info command
		{0x04, 0x11, 0x33, 0x43},                   // wake reply
		{0x04, 0x00, 0x03, 0x40},                   // success status
	} {
		n := len(v)
		crc := crc16(v[:n-2])
		if got := []byte{byte(crc), byte(crc >> 8)}; !bytes.Equal(got, v[n-2:]) {
			t.Errorf("crc16(% x) = % x, want % x", v[:n-2], got, v[n-2:])
		}
	}
	if got := buildPacket(opInfo, 0, 0, nil); !bytes.Equal(got, []byte{0x03, 0x07, 0x30, 0x00, 0x00, 0x00, 0x03, 0x5d}) {
		t.Errorf("Info packet % x", got)
	}
	if crc16(nil) != 0 {
		t.Error("crc16 of nothing is not the initial value 0")
	}
}

func TestATECC608Playback(t *testing.T) {
	t.Parallel()
	pb := &i2ctest.Playback{Ops: ops(ioWake, ioInfo, ioReadConfig, ioGenKey, ioIdle), DontPanic: true}
	a, err := NewATECC608(pb, 0x60, ATECCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkConsumed(t, pb)
	if got, want := a.Serial(), "0123456789abcdefee"; got != want {
		t.Errorf("Serial() = %s, want %s", got, want)
	}
	if got := a.Revision(); got != [4]byte{0, 0, 0x60, 0x02} {
		t.Errorf("Revision() = % x", got)
	}
	if a.KeyType() != "atecc608" || a.Addr() != 0x60 {
		t.Errorf("KeyType() = %q, Addr() = %#x", a.KeyType(), a.Addr())
	}
	key := testKey(t)
	if !key.PublicKey.Equal(a.Public()) {
		t.Error("Public() is not the chip's key")
	}
	if got := a.PublicKeyBytes(); !bytes.Equal(got, ioGenKey[2].R[:64]) {
		t.Errorf("PublicKeyBytes() = % x", got)
	}

	pb.Lock()
	pb.Ops = append(pb.Ops, ops(ioWake, ioRandom, ioNonce, ioSign, ioIdle)...)
	pb.Unlock()
	sig, err := a.Sign(nil, signDigest, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	checkConsumed(t, pb)
	if !bytes.Equal(sig, signDER) {
		t.Errorf("signature % x, want % x", sig, signDER)
	}
	if !ecdsa.VerifyASN1(&key.PublicKey, signDigest, sig) {
		t.Error("signature does not verify")
	}

	// Refused digests make no transfer.
	for _, tc := range []struct {
		digest []byte
		opts   crypto.SignerOpts
	}{
		{signDigest[:31], crypto.SHA256},
		{append(signDigest, 0), crypto.SHA256},
		{signDigest, crypto.SHA384},
		{signDigest, nil},
	} {
		if _, err := a.Sign(nil, tc.digest, tc.opts); err == nil {
			t.Errorf("Sign(%d bytes, %v) succeeded", len(tc.digest), tc.opts)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sign(nil, signDigest, crypto.SHA256); !errors.Is(err, ErrClosed) {
		t.Errorf("Sign after Close: %v", err)
	}
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestATECC608PlaybackErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ops  []i2ctest.IO
		want string
		is   error
	}{
		{
			name: "ATECC508A",
			ops: ops(ioWake, []i2ctest.IO{
				ioInfo[0],
				{Addr: 0x60, R: []byte{0x07}},
				{Addr: 0x60, R: []byte{0x00, 0x00, 0x50, 0x00, 0x03, 0x91}},
			}, ioIdle),
			want: "not an ATECC608 (revision 00 00 50 00: ATECC508A)",
		},
		{
			name: "execution error",
			ops: ops(ioWake, ioInfo, ioReadConfig, []i2ctest.IO{
				ioGenKey[0],
				{Addr: 0x60, R: []byte{0x04}},
				{Addr: 0x60, R: []byte{0x0f, 0x23, 0x42}},
			}, ioIdle),
			want: "genkey: execution error (status 0x0f)",
			is:   &StatusError{Op: "genkey", Code: StatusExecution},
		},
		{
			name: "bad CRC",
			ops: ops(ioWake, []i2ctest.IO{
				ioInfo[0],
				{Addr: 0x60, R: []byte{0x07}},
				{Addr: 0x60, R: []byte{0x00, 0x00, 0x60, 0x02, 0x80, 0x39}},
			}, ioIdle),
			want: "info: identity: atecc608: bad CRC",
			is:   ErrCRC,
		},
		{
			name: "count out of range",
			ops: ops(ioWake, []i2ctest.IO{
				ioInfo[0],
				{Addr: 0x60, R: []byte{0xff}},
			}, ioIdle),
			want: "info: response count 255, want 4 to 7",
		},
		{
			// A self-test failure answers the wake-up: no retry.
			name: "self-test failure at wake-up",
			ops: []i2ctest.IO{
				{Addr: 0x00, W: []byte{0x00}},
				{Addr: 0x60, R: []byte{0x04, 0x07, 0x40, 0xc2}},
			},
			want: "wake: self-test error (status 0x07)",
			is:   &StatusError{Code: StatusSelfTest},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pb := &i2ctest.Playback{Ops: tc.ops, DontPanic: true}
			_, err := NewATECC608(pb, 0x60, ATECCOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if err := pb.Close(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestStatusError(t *testing.T) {
	t.Parallel()
	for code, want := range map[byte]string{
		0x01: "checkmac/verify miscompare", 0x03: "parse error", 0x05: "ECC fault", 0x07: "self-test error",
		0x08: "RNG health test error", 0x0F: "execution error", 0x11: "after wake", 0xFF: "CRC or communication error",
		0x42: "unknown status",
	} {
		p := simStatus(code)
		_, err := parseResponse(p)
		var se *StatusError
		if !errors.As(err, &se) || se.Code != code || !strings.Contains(err.Error(), want) {
			t.Errorf("status %#x: %v, want *StatusError %q", code, err, want)
		}
		if !errors.Is(err, &StatusError{Code: code}) || errors.Is(err, &StatusError{Code: code + 1}) {
			t.Errorf("status %#x: errors.Is does not match codes", code)
		}
	}
	err := error(&StatusError{Op: "sign", Code: StatusExecution})
	if !errors.Is(err, &StatusError{Op: "sign", Code: StatusExecution}) || errors.Is(err, &StatusError{Op: "nonce", Code: StatusExecution}) {
		t.Error("errors.Is does not match Op")
	}
	if got, want := err.Error(), "identity: atecc608: sign: execution error (status 0x0f)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestParseResponse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   []byte
		want []byte
		err  string
	}{
		{[]byte{0x04, 0x00, 0x03, 0x40}, []byte{0x00}, ""},
		{[]byte{0x07, 0x00, 0x00, 0x60, 0x02, 0x80, 0x38}, []byte{0x00, 0x00, 0x60, 0x02}, ""},
		{nil, nil, "response of 0 bytes"},
		{[]byte{0x04, 0x00, 0x03}, nil, "response of 3 bytes"},
		{[]byte{0x05, 0x00, 0x03, 0x40}, nil, "response count 5 for 4 bytes"},
		{[]byte{0x04, 0x00, 0x40, 0x03}, nil, "bad CRC"},
		{[]byte{0x04, 0x11, 0x33, 0x43}, nil, "after wake"},
	} {
		got, err := parseResponse(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseResponse(% x) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("parseResponse(% x) = % x, %v; want % x", tc.in, got, err, tc.want)
		}
	}
}

func TestParseATECCSpec(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		arg   string
		bus   string
		addrs []uint16
		err   string
	}{
		{"/dev/i2c-1", "/dev/i2c-1", []uint16{0x60, 0x35}, ""},
		{"/dev/i2c-1@0x35", "/dev/i2c-1", []uint16{0x35}, ""},
		{"1@0X60", "1", []uint16{0x60}, ""},
		{"", "", nil, "names no I²C bus"},
		{"@0x60", "", nil, "names no I²C bus"},
		{"/dev/i2c-1@60", "", nil, "0x prefix"},
		{"/dev/i2c-1@0xC0", "", nil, "8-bit address (as cryptoauthlib writes them); use the 7-bit 0x60"},
		{"/dev/i2c-1@0x7f", "", nil, "outside the 7-bit range"},
		{"/dev/i2c-1@0xzz", "", nil, "bad address"},
		{"/dev/i2c 1", "", nil, "bad I²C bus name"},
		{"/dev/i2c-1?x=1", "", nil, "this driver takes no options"},
	} {
		s, err := parseATECCSpec(tc.arg)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseATECCSpec(%q) error %v, want %q", tc.arg, err, tc.err)
			}
			continue
		}
		if err != nil || s.bus != tc.bus || !equalAddrs(s.addrs, tc.addrs) {
			t.Errorf("parseATECCSpec(%q) = %+v, %v", tc.arg, s, err)
		}
	}
}

func equalAddrs(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// scriptBus answers every read of the chip with the next bytes of a
// script, for the fuzz target: the driver must survive any response.
type scriptBus struct {
	data      []byte
	exhausted func() // called when a read finds the script empty
}

func (b *scriptBus) String() string                  { return "script" }
func (b *scriptBus) SetSpeed(physic.Frequency) error { return nil }
func (b *scriptBus) Tx(addr uint16, w, r []byte) error {
	if addr == 0 || len(r) == 0 {
		return nil
	}
	if len(b.data) == 0 {
		if b.exhausted != nil {
			b.exhausted()
		}
		return errSimNACK
	}
	n := copy(r, b.data)
	b.data = b.data[n:]
	for i := n; i < len(r); i++ {
		r[i] = 0xFF
	}
	return nil
}

func FuzzATECCResponse(f *testing.F) {
	f.Add([]byte{0x04, 0x11, 0x33, 0x43})
	f.Add([]byte{0x04, 0x00, 0x03, 0x40})
	f.Add([]byte{0x04, 0x0f, 0x23, 0x42})
	f.Add([]byte{0x07, 0x00, 0x00, 0x60, 0x02, 0x80, 0x38})
	f.Add(ioGenKey[1].R)
	f.Add(append([]byte{0x43}, ioSign[2].R...))
	f.Add([]byte{0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 260 {
			return // longer than any count byte can announce
		}
		data, err := parseResponse(b)
		if err == nil {
			if len(data) != len(b)-3 || int(b[0]) != len(b) {
				t.Fatalf("parseResponse(% x) accepted %d data bytes", b, len(data))
			}
			crc := crc16(b[:len(b)-2])
			if b[len(b)-2] != byte(crc) || b[len(b)-1] != byte(crc>>8) {
				t.Fatalf("parseResponse(% x) accepted a bad CRC", b)
			}
		}
		// The whole receive path, with the fuzzed bytes as the answer to
		// a GenKey after a good wake-up.
		// An empty script (the chip NACKs forever) cancels the context
		// instead of polling until the deadline.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		bus := &scriptBus{data: append([]byte{0x04, 0x11, 0x33, 0x43}, b...), exhausted: cancel}
		a := &ATECC608{bus: bus, addr: 0x60, opts: ATECCOptions{}.withDefaults(),
			sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }}
		if err := a.wake(ctx); err != nil {
			t.Fatal(err)
		}
		out, err := a.command(ctx, opGenKey, genKeyPublic, keySlot, nil, 64)
		if err == nil && len(out) != 64 {
			t.Fatalf("command returned %d bytes", len(out))
		}
	})
}

func BenchmarkCRC16(b *testing.B) {
	p := buildPacket(opNonce, nonceModeMsgDig, 0, make([]byte, 32))
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		crc16(p[1:])
	}
}

func TestSignDigestHelpers(t *testing.T) {
	t.Parallel()
	d := sha256.Sum256([]byte("pikit reading"))
	if !bytes.Equal(d[:], signDigest) {
		t.Fatal("signDigest is not SHA-256(\"pikit reading\")")
	}
	rs, err := derToRS(signDER)
	if err != nil || !bytes.Equal(rs[:], ioSign[2].R[:64]) {
		t.Fatalf("derToRS = % x, %v", rs, err)
	}
	der, err := rsToDER(rs[:])
	if err != nil || !bytes.Equal(der, signDER) {
		t.Fatalf("rsToDER = % x, %v", der, err)
	}
	for _, bad := range [][]byte{nil, {0x30, 0x00}, append(bytes.Clone(signDER), 0)} {
		if _, err := derToRS(bad); err == nil {
			t.Errorf("derToRS(% x) accepted", bad)
		}
	}
	if _, err := rsToDER(make([]byte, 64)); err == nil {
		t.Error("rsToDER accepted a zero signature")
	}
	if _, err := rsToDER(make([]byte, 63)); err == nil {
		t.Error("rsToDER accepted 63 bytes")
	}
}
