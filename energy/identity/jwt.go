package identity

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// ReadingHeader returns the JWT header the original gateway puts on a
// harvest of readings:
//
//	{"alg":"ES256","typ":"JWT","device":deviceSerial,"opr":"production",
//	 "model":model,"dtype":dtype,"sn":inverterSerial}
//
// deviceSerial is the identity's Serial, model the device profile name
// (lower-cased, as the original gateway does), dtype the kind of data (e.g.
// "modbus_registers") and inverterSerial the serial number of the device
// that was read.
func ReadingHeader(deviceSerial, model, dtype, inverterSerial string) map[string]any {
	return map[string]any{
		"alg":    "ES256",
		"typ":    "JWT",
		"device": deviceSerial,
		"opr":    "production",
		"model":  strings.ToLower(model),
		"dtype":  dtype,
		"sn":     inverterSerial,
	}
}

// SignJWT returns the compact JWS (RFC 7515) of payload signed with ES256 by
// id: base64url(header JSON) "." base64url(payload JSON) "." base64url(r||s),
// without padding, where r and s are 32-byte big-endian integers (the JOSE
// form, not ASN.1). header is copied; its "alg" and "typ" are always set to
// "ES256" and "JWT". payload is encoded with encoding/json (a
// json.RawMessage is used as is, once checked to be valid JSON).
func SignJWT(id Identity, header map[string]any, payload any) (string, error) {
	if id == nil {
		return "", errors.New("identity: SignJWT: nil identity")
	}
	h := make(map[string]any, len(header)+2)
	for k, v := range header {
		h[k] = v
	}
	h["alg"] = "ES256"
	h["typ"] = "JWT"
	hj, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("identity: SignJWT: header: %w", err)
	}
	pj, err := json.Marshal(payload)
	if err != nil {
		return "", fmt.Errorf("identity: SignJWT: payload: %w", err)
	}
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString(hj) + "." + enc.EncodeToString(pj)
	digest := sha256.Sum256([]byte(signed))
	der, err := id.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("identity: SignJWT: %w", err)
	}
	rs, err := derToRS(der)
	if err != nil {
		return "", fmt.Errorf("identity: SignJWT: %w", err)
	}
	return signed + "." + enc.EncodeToString(rs[:]), nil
}

// ecdsaSig is the ASN.1 form of an ECDSA signature.
type ecdsaSig struct {
	R, S *big.Int
}

// derToRS converts an ASN.1 DER P-256 signature to the 64-byte r||s form.
func derToRS(der []byte) ([64]byte, error) {
	var out [64]byte
	var sig ecdsaSig
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) != 0 || sig.R == nil || sig.S == nil ||
		sig.R.Sign() <= 0 || sig.S.Sign() <= 0 || sig.R.BitLen() > 256 || sig.S.BitLen() > 256 {
		return out, errors.New("malformed ECDSA signature from the signer")
	}
	sig.R.FillBytes(out[:32])
	sig.S.FillBytes(out[32:])
	return out, nil
}

// rsToDER converts a 64-byte r||s signature to ASN.1 DER.
func rsToDER(rs []byte) ([]byte, error) {
	if len(rs) != 64 {
		return nil, fmt.Errorf("signature of %d bytes, want 64", len(rs))
	}
	r := new(big.Int).SetBytes(rs[:32])
	s := new(big.Int).SetBytes(rs[32:])
	if r.Sign() == 0 || s.Sign() == 0 {
		return nil, errors.New("signature with a zero r or s")
	}
	return asn1.Marshal(ecdsaSig{r, s})
}
