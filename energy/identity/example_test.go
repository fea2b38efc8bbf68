package identity_test

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log"
	"math/big"
	"slices"
	"strings"

	"github.com/pikit/pikit/energy/identity"
)

// A fixed key, so that the example's output (not the signature, which is
// randomised) is always the same. A gateway uses identity.OpenDefault.
const exampleKey = `-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIC7kfY69M6F1tkgRqGUqhD5V1XVxaLEhsvgP5SWSS4+doAoGCCqGSM49
AwEHoUQDQgAEaNGtL5l+5XII+9jbxYwvEBL1hohQaS75iTDLCqY4SYjZI+xhRCdk
W+NsmzXs7xYStCOfx5rqX6jso+QGj2H4nQ==
-----END EC PRIVATE KEY-----
`

// verifyES256 checks a compact ES256 JWS with the standard library only.
func verifyES256(tok string, pub *ecdsa.PublicKey) (header map[string]any, ok bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, false
	}
	hj, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	sig, err2 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || len(sig) != 64 || json.Unmarshal(hj, &header) != nil {
		return nil, false
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	return header, ecdsa.Verify(pub, digest[:], r, s)
}

func Example() {
	blk, _ := pem.Decode([]byte(exampleKey))
	key, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		log.Fatal(err)
	}
	id, err := identity.NewSoftware(key)
	if err != nil {
		log.Fatal(err)
	}
	defer id.Close()

	// One harvest of an inverter: raw registers keyed by time in ms.
	barn := map[string]map[string]int{"1700000000000": {"40071": 2301, "40083": 1520}}
	hdr := identity.ReadingHeader(id.Serial(), "sunspec", "modbus_registers", "SE123456")
	tok, err := identity.SignJWT(id, hdr, barn)
	if err != nil {
		log.Fatal(err)
	}

	header, ok := verifyES256(tok, id.Public().(*ecdsa.PublicKey))
	keys := make([]string, 0, len(header))
	for k := range header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Println("key type:", id.KeyType())
	fmt.Println("device serial:", id.Serial())
	fmt.Println("verified:", ok)
	fmt.Println("header keys:", keys)
	fmt.Println("alg, opr, sn:", header["alg"], header["opr"], header["sn"])
	// Output:
	// key type: software
	// device serial: 5128627fb593908380
	// verified: true
	// header keys: [alg device dtype model opr sn typ]
	// alg, opr, sn: ES256 production SE123456
}

// The simulated ATECC608 runs the chip's whole protocol in process; its
// key is new at every start.
func ExampleOpen_sim() {
	id, err := identity.Open("sim")
	if err != nil {
		log.Fatal(err)
	}
	defer id.Close()
	tok, err := identity.SignJWT(id, identity.ReadingHeader(id.Serial(), "deye", "modbus_registers", "2305123456"),
		map[string]any{"1700000000000": map[string]int{"586": 1234}})
	if err != nil {
		log.Fatal(err)
	}
	_, ok := verifyES256(tok, id.Public().(*ecdsa.PublicKey))
	fmt.Println(id.KeyType(), len(id.Serial()), ok)
	// Output: sim 18 true
}
