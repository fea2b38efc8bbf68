package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pikit/pikit/energy/identity"
)

const testToken = "test-token-0123456789"

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testLogger writes to the test log (only shown on failure or -v).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// testGateway is a gateway with its API on an httptest server.
type testGateway struct {
	g    *gateway
	srv  *httptest.Server
	dir  string
	stop func()
}

// newTestGateway starts a gateway on a sim identity with s (interval 1s
// and one sim device when s has none).
func newTestGateway(t *testing.T, s Settings) *testGateway {
	t.Helper()
	if s.Interval == 0 {
		s.Interval = Duration(time.Second)
	}
	if s.Devices == nil {
		s.Devices = []DeviceConfig{{ID: "inv1", Spec: "sim?seed=1"}}
	}
	if err := s.validate(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := saveSettings(dir, s); err != nil {
		t.Fatal(err)
	}
	id, err := identity.Open("sim")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := newGateway(ctx, gatewayConfig{
		DataDir: dir, Settings: s, ID: id, Log: testLogger(t), NoSync: true,
		MaxBackoff: 2 * time.Second, MinRetry: 100 * time.Millisecond, MaxRetry: 500 * time.Millisecond,
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	g.start()
	srv := httptest.NewServer(newServer(g, newAuth(testToken), testLogger(t)).handler())
	tg := &testGateway{g: g, srv: srv, dir: dir}
	var once sync.Once
	tg.stop = func() {
		once.Do(func() {
			srv.Close()
			cancel()
			if err := g.close(); err != nil {
				t.Errorf("closing the gateway: %v", err)
			}
			id.Close()
		})
	}
	t.Cleanup(tg.stop)
	return tg
}

// call makes an API request; body may be nil, a string or a value to
// marshal. It returns the status and the decoded JSON (nil if not JSON).
func (tg *testGateway) call(t testing.TB, method, path string, body any, token string) (int, map[string]any) {
	t.Helper()
	return apiCall(t, tg.srv.URL, method, path, body, token)
}

func apiCall(t testing.TB, base, method, path string, body any, token string) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		m = nil
	}
	return res.StatusCode, m
}

// deviceState returns a device's entry in /api/state.
func (tg *testGateway) deviceState(t testing.TB, id string) map[string]any {
	t.Helper()
	_, st := tg.call(t, "GET", "/api/state", nil, "")
	devs, _ := st["devices"].([]any)
	for _, d := range devs {
		if m, _ := d.(map[string]any); m["id"] == id {
			return m
		}
	}
	return nil
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

// publicKey fetches and parses the gateway's public key from /api/crypto.
func publicKey(t testing.TB, base string) *ecdsa.PublicKey {
	t.Helper()
	code, doc := apiCall(t, base, "GET", "/api/crypto", nil, "")
	if code != 200 {
		t.Fatalf("/api/crypto: %d %v", code, doc)
	}
	s, _ := doc["public_key"].(string)
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		t.Fatalf("/api/crypto: no PEM public key in %v", doc)
		return nil
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok {
		t.Fatalf("public key is %T, want ECDSA", k)
	}
	return pub
}

// verifyJWT checks an ES256 compact JWS and decodes its parts.
func verifyJWT(pub *ecdsa.PublicKey, tok string) (map[string]any, jwtPayload, error) {
	var p jwtPayload
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, p, errors.New("not three parts")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, p, fmt.Errorf("bad signature encoding: %v", err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return nil, p, errors.New("signature does not verify")
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	pb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil {
		return nil, p, errors.New("bad base64")
	}
	var h map[string]any
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, p, err
	}
	if err := json.Unmarshal(pb, &p); err != nil {
		return nil, p, err
	}
	return h, p, nil
}

// receiver is an HTTP endpoint for signed batches. respond decides each
// request's fate: "ok" (record, 200), "down" (503 without reading) or
// "interrupted" (read and record the seqs as interrupted, then 500: the
// gateway cannot know they arrived).
type receiver struct {
	t       testing.TB
	respond func(n int) string
	delay   func() time.Duration
	// inflight counts requests stored and not yet answered (with delay).
	inflight atomic.Int32

	mu          sync.Mutex
	pub         *ecdsa.PublicKey
	requests    int
	got         map[uint64]int // seq -> times received in OK batches
	interrupted map[uint64]bool
	badSig      int
	errs        []string
	serial      string
}

func newReceiver(t testing.TB) (*receiver, *httptest.Server) {
	r := &receiver{t: t, got: map[uint64]int{}, interrupted: map[uint64]bool{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) setKey(pub *ecdsa.PublicKey) {
	r.mu.Lock()
	r.pub = pub
	r.mu.Unlock()
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.requests++
	n := r.requests
	respond, delay := r.respond, r.delay
	r.mu.Unlock()
	fate := "ok"
	if respond != nil {
		fate = respond(n)
	}
	if fate == "down" {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	var b signedBatch
	if err := json.Unmarshal(body, &b); err != nil || req.Header.Get("Content-Type") != "application/json" {
		r.fail("bad body: %v %q", err, body)
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	pub := r.pub
	r.mu.Unlock()
	if pub == nil {
		http.Error(w, "no key yet", http.StatusServiceUnavailable)
		return
	}
	var seqs []uint64
	for _, tok := range b.JWTs {
		h, p, err := verifyJWT(pub, tok)
		if err != nil {
			r.mu.Lock()
			r.badSig++
			r.mu.Unlock()
			r.fail("JWT: %v", err)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if h["alg"] != "ES256" || h["dtype"] != "reading" || h["device"] != b.Gateway || h["opr"] != "production" {
			r.fail("JWT header %v", h)
		}
		for _, rd := range p.Readings {
			var reading struct {
				Device struct{ Serial string } `json:"device"`
			}
			if json.Unmarshal(rd.Reading, &reading) != nil || reading.Device.Serial != h["sn"] {
				r.fail("reading %d: serial %q, header sn %v", rd.Seq, reading.Device.Serial, h["sn"])
			}
			seqs = append(seqs, rd.Seq)
		}
	}
	r.mu.Lock()
	r.serial = b.Gateway
	for _, s := range seqs {
		if fate == "interrupted" {
			r.interrupted[s] = true
		} else {
			r.got[s]++
		}
	}
	r.mu.Unlock()
	if fate == "interrupted" {
		http.Error(w, "stored, but the answer is lost", http.StatusInternalServerError)
		return
	}
	if delay != nil {
		// Stored, answer pending: a sender killed now never learns the
		// batch arrived.
		r.inflight.Add(1)
		time.Sleep(delay())
		r.inflight.Add(-1)
	}
	w.WriteHeader(http.StatusOK)
}

func (r *receiver) fail(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) < 20 {
		r.errs = append(r.errs, fmt.Sprintf(format, a...))
	}
}

// distinct returns how many different seqs arrived (OK or interrupted).
func (r *receiver) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.got)
	for s := range r.interrupted {
		if r.got[s] == 0 {
			n++
		}
	}
	return n
}

// has reports whether seq arrived at all.
func (r *receiver) has(seq uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[seq] > 0 || r.interrupted[seq]
}

// check reports receiver-side errors and duplicates outside interrupted
// sends.
func (r *receiver) check(t testing.TB, allowDupes bool) (dupes int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.errs {
		t.Errorf("receiver: %s", e)
	}
	if r.badSig > 0 {
		t.Errorf("%d batches with bad signatures", r.badSig)
	}
	var bad []uint64
	for s, n := range r.got {
		extra := n - 1
		if r.interrupted[s] {
			extra = n // one interrupted delivery, then n OK ones
		}
		if extra > 0 {
			dupes += extra
			if !allowDupes && !r.interrupted[s] {
				bad = append(bad, s)
			}
		}
	}
	sort.Slice(bad, func(i, j int) bool { return bad[i] < bad[j] })
	if len(bad) > 0 {
		t.Errorf("seqs delivered twice without an interrupted send: %v", bad)
	}
	return dupes
}

// benchIdentity is a software identity in a temporary key file.
func benchIdentity(b *testing.B) identity.Identity {
	id, err := identity.Open("file:" + filepath.Join(b.TempDir(), "key.pem"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { id.Close() })
	return id
}
