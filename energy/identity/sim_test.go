package identity

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func newTestSim(t *testing.T) (*SimBus, *ATECC608) {
	t.Helper()
	bus := NewSimBus(testKey(t), testSerial)
	a, err := NewATECC608(bus, 0x60, fastOpts)
	if err != nil {
		t.Fatal(err)
	}
	return bus, a
}

func digestOf(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
}

func TestOpenSim(t *testing.T) {
	t.Parallel()
	id, err := Open("sim")
	if err != nil {
		t.Fatal(err)
	}
	defer id.Close()
	if id.KeyType() != "sim" {
		t.Errorf("KeyType() = %q", id.KeyType())
	}
	if s := id.Serial(); len(s) != 18 || !strings.HasPrefix(s, "0123") || !strings.HasSuffix(s, "ee") {
		t.Errorf("Serial() = %q, want 18 hex digits shaped like a chip's", s)
	}
	pub, ok := id.Public().(*ecdsa.PublicKey)
	if !ok {
		t.Fatalf("Public() is %T", id.Public())
	}
	d := digestOf("reading")
	sig, err := id.Sign(nil, d, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(pub, d, sig) {
		t.Error("signature does not verify")
	}
	if ecdsa.VerifyASN1(pub, digestOf("other"), sig) {
		t.Error("signature verifies another digest")
	}
	if _, err := Open("sim:x"); err == nil {
		t.Error(`Open("sim:x") succeeded`)
	}
}

func TestSimProtocol(t *testing.T) {
	t.Parallel()
	bus, a := newTestSim(t)
	if a.Serial() != "0123456789abcdefee" || !testKey(t).PublicKey.Equal(a.Public()) {
		t.Fatalf("serial %s, key %v", a.Serial(), a.Public())
	}
	d := digestOf("x")
	if _, err := a.Sign(nil, d, crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	// Info, Read, GenKey at open; Random, Nonce, Sign per signature; a
	// wake-up for each.
	want := []byte{opInfo, opRead, opGenKey, opRandom, opNonce, opSign}
	if got := bus.Commands(); !bytes.Equal(got, want) {
		t.Errorf("commands % x, want % x", got, want)
	}
	if bus.Wakes() != 2 {
		t.Errorf("%d wake-ups, want 2", bus.Wakes())
	}

	// The chip answers a corrupted command with status 0xFF, and a Sign
	// with no digest loaded with an execution error.
	raw := func(pkt []byte) error {
		bus.Tx(0x00, []byte{0}, nil)
		var r [4]byte
		if err := bus.Tx(0x60, nil, r[:]); err != nil || !bytes.Equal(r[:], wakeReply) {
			t.Fatalf("wake: % x, %v", r, err)
		}
		defer bus.Tx(0x60, []byte{wordIdle}, nil)
		if err := bus.Tx(0x60, pkt, nil); err != nil {
			t.Fatal(err)
		}
		var c [1]byte
		bus.Tx(0x60, nil, c[:])
		resp := make([]byte, c[0])
		resp[0] = c[0]
		bus.Tx(0x60, nil, resp[1:])
		_, err := parseResponse(resp)
		return err
	}
	bad := buildPacket(opInfo, 0, 0, nil)
	bad[len(bad)-1] ^= 0x80
	if err := raw(bad); !errors.Is(err, &StatusError{Code: StatusCommsError}) {
		t.Errorf("bad CRC: %v", err)
	}
	if err := raw(buildPacket(opSign, signExternalMD, 0, nil)); !errors.Is(err, &StatusError{Code: StatusExecution}) {
		t.Errorf("Sign without nonce: %v", err)
	}
	if err := raw(buildPacket(0x77, 0, 0, nil)); !errors.Is(err, &StatusError{Code: StatusParseError}) {
		t.Errorf("unknown opcode: %v", err)
	}
	if err := raw(buildPacket(opNonce, nonceModeMsgDig, 0, make([]byte, 20))); !errors.Is(err, &StatusError{Code: StatusParseError}) {
		t.Errorf("short nonce: %v", err)
	}
	if err := raw(buildPacket(opGenKey, genKeyPublic, 3, nil)); !errors.Is(err, &StatusError{Code: StatusExecution}) {
		t.Errorf("GenKey of empty slot: %v", err)
	}
	// The driver still works afterwards.
	if _, err := a.Sign(nil, d, crypto.SHA256); err != nil {
		t.Fatal(err)
	}
}

func TestSimFaults(t *testing.T) {
	t.Parallel()
	d := digestOf("fault")

	t.Run("wake retries", func(t *testing.T) {
		t.Parallel()
		bus := NewSimBus(testKey(t), testSerial)
		bus.FailWakes(2)
		a, err := NewATECC608(bus, 0x60, fastOpts)
		if err != nil {
			t.Fatalf("third wake-up should succeed: %v", err)
		}
		bus.FailWakes(3)
		if _, err := a.Sign(nil, d, crypto.SHA256); !errors.Is(err, ErrNoChip) {
			t.Fatalf("Sign after 3 failed wake-ups: %v", err)
		}
		bus.FailWakes(0)
		if _, err := a.Sign(nil, d, crypto.SHA256); err != nil {
			t.Fatal(err)
		}
		bus.FailWakes(5)
		_, err = NewATECC608(bus, 0x60, ATECCOptions{WakeAttempts: 5, WakeRetryDelay: fastOpts.WakeRetryDelay})
		if !errors.Is(err, ErrNoChip) || !strings.Contains(err.Error(), "after 5 wake-ups") {
			t.Fatalf("open after 5 failed wake-ups: %v", err)
		}
	})

	t.Run("status errors", func(t *testing.T) {
		t.Parallel()
		bus, a := newTestSim(t)
		for _, tc := range []struct {
			op   byte
			code byte
			name string
		}{
			{opSign, StatusExecution, "sign"},
			{opSign, StatusECCFault, "sign"},
			{opNonce, StatusParseError, "nonce"},
			{opRandom, StatusHealthTest, "random"},
			{opRandom, StatusSelfTest, "random"},
			{opSign, StatusAfterWake, "sign"},
			{opNonce, StatusCommsError, "nonce"},
			{opNonce, StatusMiscompare, "nonce"},
		} {
			bus.FailCommand(tc.op, tc.code)
			_, err := a.Sign(nil, d, crypto.SHA256)
			var se *StatusError
			if !errors.As(err, &se) || se.Code != tc.code || se.Op != tc.name {
				t.Errorf("op %#x status %#x: %v", tc.op, tc.code, err)
			}
			// The fault is one-shot.
			if _, err := a.Sign(nil, d, crypto.SHA256); err != nil {
				t.Errorf("Sign after fault: %v", err)
			}
		}
	})

	t.Run("bad CRC", func(t *testing.T) {
		t.Parallel()
		bus, a := newTestSim(t)
		bus.CorruptResponses(1)
		if _, err := a.Sign(nil, d, crypto.SHA256); !errors.Is(err, ErrCRC) || !strings.Contains(err.Error(), "random") {
			t.Errorf("corrupted response: %v", err)
		}
		if _, err := a.Sign(nil, d, crypto.SHA256); err != nil {
			t.Errorf("Sign after fault: %v", err)
		}
	})

	t.Run("busy polling", func(t *testing.T) {
		t.Parallel()
		bus, a := newTestSim(t)
		bus.BusyPolls(4)
		sig, err := a.Sign(nil, d, crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if !ecdsa.VerifyASN1(a.Public().(*ecdsa.PublicKey), d, sig) {
			t.Error("signature does not verify")
		}
		// A chip that never answers: Info gives up after its 5 ms
		// maximum plus the slack.
		bus.BusyPolls(1 << 30)
		_, err = NewATECC608(bus, 0x60, fastOpts)
		if err == nil || !strings.Contains(err.Error(), "info: no response within 55ms") {
			t.Errorf("hung chip: %v", err)
		}
	})

	t.Run("other address", func(t *testing.T) {
		t.Parallel()
		bus := NewSimBus(testKey(t), testSerial)
		bus.SetAddr(0x35)
		if _, err := NewATECC608(bus, 0x60, fastOpts); !errors.Is(err, ErrNoChip) {
			t.Fatalf("open at 0x60: %v", err)
		}
		a, err := NewATECC608(bus, 0x35, fastOpts)
		if err != nil {
			t.Fatal(err)
		}
		if a.Addr() != 0x35 {
			t.Errorf("Addr() = %#x", a.Addr())
		}
	})

	t.Run("already awake", func(t *testing.T) {
		t.Parallel()
		// A process died after sending Info: the chip is awake with a
		// response waiting, ignores the wake pulse and answers the wake
		// read with its stale response. The driver sends it to idle and
		// wakes it again.
		bus := NewSimBus(testKey(t), testSerial)
		bus.Tx(0x00, []byte{0}, nil)
		var r [4]byte
		bus.Tx(0x60, nil, r[:])
		bus.Tx(0x60, buildPacket(opInfo, 0, 0, nil), nil)
		if _, err := NewATECC608(bus, 0x60, fastOpts); err != nil {
			t.Fatal(err)
		}
		if bus.Wakes() != 2 {
			t.Errorf("%d wake-ups, want 2", bus.Wakes())
		}
	})

	t.Run("context", func(t *testing.T) {
		t.Parallel()
		_, a := newTestSim(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := a.SignContext(ctx, d); !errors.Is(err, context.Canceled) {
			t.Errorf("SignContext with a cancelled context: %v", err)
		}
		if _, err := a.SignContext(context.Background(), d[:16]); err == nil {
			t.Error("SignContext accepted a 16-byte digest")
		}
	})
}

// TestSimConcurrent signs from many goroutines at once: the transaction
// lock must keep each Random/Nonce/Sign sequence together, or the chip
// would sign another goroutine's digest (or none).
func TestSimConcurrent(t *testing.T) {
	t.Parallel()
	_, a := newTestSim(t)
	pub := a.Public().(*ecdsa.PublicKey)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 4 {
				d := digestOf(fmt.Sprintf("%d/%d", g, i))
				sig, err := a.Sign(nil, d, crypto.SHA256)
				if err != nil {
					errs <- err
					return
				}
				if !ecdsa.VerifyASN1(pub, d, sig) {
					errs <- fmt.Errorf("signature %d/%d does not verify", g, i)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
