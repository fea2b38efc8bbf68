package identity

import (
	"crypto"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

// testBarn is a payload shaped like the original gateway's: readings keyed
// by millisecond timestamps.
var testBarn = map[string]any{
	"1700000000000": map[string]any{"40071": 2301, "40072": 0, "40083": -1},
	"1700000001000": map[string]any{"40071": 2302, "40072": 0, "40083": -1},
}

func TestSignJWT(t *testing.T) {
	t.Parallel()
	soft, err := NewSoftware(testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	sim, err := OpenSim()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []Identity{soft, sim} {
		t.Run(id.KeyType(), func(t *testing.T) {
			t.Parallel()
			hdr := ReadingHeader(id.Serial(), "Huawei", "modbus_registers", "HV2150012345")
			tok, err := SignJWT(id, hdr, testBarn)
			if err != nil {
				t.Fatal(err)
			}
			pub := id.Public().(*ecdsa.PublicKey)

			// An independent implementation verifies it.
			claims := jwt.MapClaims{}
			parsed, err := jwt.ParseWithClaims(tok, claims, func(tk *jwt.Token) (any, error) { return pub, nil },
				jwt.WithValidMethods([]string{"ES256"}))
			if err != nil {
				t.Fatalf("golang-jwt rejects the token: %v\n%s", err, tok)
			}
			if !parsed.Valid || parsed.Method != jwt.SigningMethodES256 {
				t.Errorf("token valid %t, method %v", parsed.Valid, parsed.Method)
			}
			wantHdr := map[string]any{
				"alg": "ES256", "typ": "JWT", "device": id.Serial(), "opr": "production",
				"model": "huawei", "dtype": "modbus_registers", "sn": "HV2150012345",
			}
			if diff := cmp.Diff(wantHdr, parsed.Header); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}
			var wantClaims jwt.MapClaims
			b, _ := json.Marshal(testBarn)
			json.Unmarshal(b, &wantClaims)
			if diff := cmp.Diff(wantClaims, claims); diff != "" {
				t.Errorf("payload (-want +got):\n%s", diff)
			}

			// JOSE form: unpadded base64url, a 64-byte r||s signature.
			parts := strings.Split(tok, ".")
			if len(parts) != 3 || strings.ContainsAny(tok, "=+/") {
				t.Fatalf("not a compact JWS: %s", tok)
			}
			sig, err := base64.RawURLEncoding.DecodeString(parts[2])
			if err != nil || len(sig) != 64 {
				t.Fatalf("signature of %d bytes (%v), want 64", len(sig), err)
			}

			// Another key does not verify it.
			other, _ := OpenSim()
			if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return other.Public(), nil }); err == nil {
				t.Error("token verifies with another key")
			}
			// Neither does a tampered payload.
			parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"1700000000000":{"40071":9999}}`))
			if _, err := jwt.Parse(strings.Join(parts, "."), func(*jwt.Token) (any, error) { return pub, nil }); err == nil {
				t.Error("tampered token verifies")
			}
		})
	}
}

func TestSignJWTHeaderForced(t *testing.T) {
	t.Parallel()
	id, _ := NewSoftware(testKey(t))
	in := map[string]any{"alg": "none", "typ": "JOSE", "device": id.Serial(), "subKey": "state"}
	tok, err := SignJWT(id, in, map[string]string{"hello": "world"})
	if err != nil {
		t.Fatal(err)
	}
	if in["alg"] != "none" {
		t.Error("SignJWT modified the caller's header")
	}
	parsed, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return id.Public(), nil }, jwt.WithValidMethods([]string{"ES256"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"alg", "device", "subKey", "typ"}
	if got := slices.Sorted(maps.Keys(parsed.Header)); !slices.Equal(got, want) {
		t.Errorf("header keys %v, want %v", got, want)
	}
	if parsed.Header["alg"] != "ES256" || parsed.Header["typ"] != "JWT" {
		t.Errorf("header %v", parsed.Header)
	}
}

// failSigner is an Identity whose Sign fails or returns garbage.
type failSigner struct {
	Identity
	sig []byte
	err error
}

func (f failSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) { return f.sig, f.err }

func TestSignJWTErrors(t *testing.T) {
	t.Parallel()
	id, _ := NewSoftware(testKey(t))
	if _, err := SignJWT(nil, nil, 1); err == nil {
		t.Error("nil identity accepted")
	}
	if _, err := SignJWT(id, map[string]any{"x": make(chan int)}, 1); err == nil || !strings.Contains(err.Error(), "header") {
		t.Errorf("bad header: %v", err)
	}
	if _, err := SignJWT(id, nil, func() {}); err == nil || !strings.Contains(err.Error(), "payload") {
		t.Errorf("bad payload: %v", err)
	}
	if _, err := SignJWT(id, nil, json.RawMessage(`{"a":`)); err == nil {
		t.Error("invalid RawMessage accepted")
	}
	boom := errors.New("chip on fire")
	if _, err := SignJWT(failSigner{id, nil, boom}, nil, 1); !errors.Is(err, boom) {
		t.Errorf("Sign error not wrapped: %v", err)
	}
	if _, err := SignJWT(failSigner{id, []byte{0x30, 0x00}, nil}, nil, 1); err == nil || !strings.Contains(err.Error(), "malformed ECDSA signature") {
		t.Errorf("garbage signature: %v", err)
	}
}

func TestReadingHeader(t *testing.T) {
	t.Parallel()
	got := ReadingHeader("0123456789abcdefee", "SunSpec", "sunspec", "SN1")
	want := map[string]any{
		"alg": "ES256", "typ": "JWT", "device": "0123456789abcdefee", "opr": "production",
		"model": "sunspec", "dtype": "sunspec", "sn": "SN1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadingHeader (-want +got):\n%s", diff)
	}
}
