package main

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

const (
	sessionCookie = "treatfeeder_session"
	sessionTTL    = 30 * 24 * time.Hour
	// Login attempts: a burst of loginBurst per client address, refilled
	// one every loginRefill: enough for typos, far too slow for guessing.
	loginBurst  = 5
	loginRefill = 20 * time.Second
	// maxLimiters bounds the limiter table under a flood of addresses.
	maxLimiters = 4096
)

// auth checks passwords, session cookies and bearer tokens.
//
// Sessions are stateless: a cookie carries its expiry and an HMAC over it,
// keyed by a secret in the data dir mixed with the password, so sessions
// survive a restart and all end when the password changes.
type auth struct {
	passwordSum [32]byte // SHA-256 of the password: compared in constant time, equal length
	tokenSum    [32]byte
	hasToken    bool
	key         []byte
	now         func() time.Time
	secure      bool // TLS: cookies get the Secure attribute

	mu       sync.Mutex
	limiters map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// loadPassword returns the configured password, or the one stored in the
// data dir, or a new one it generates and stores (0600). generated reports
// the last case, so the program prints it once.
func loadPassword(dataDir, configured string) (password string, generated bool, err error) {
	if configured != "" {
		return configured, false, nil
	}
	path := filepath.Join(dataDir, "password")
	if b, err := os.ReadFile(path); err == nil {
		if p := strings.TrimSpace(string(b)); p != "" {
			return p, false, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("reading password: %w", err)
	}
	password = randomText(12)
	if err := writeSecret(path, []byte(password+"\n")); err != nil {
		return "", false, fmt.Errorf("storing generated password: %w", err)
	}
	return password, true, nil
}

// loadKey returns the session key stored in the data dir, creating it.
func loadKey(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, "session.key")
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return b, nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := writeSecret(path, key); err != nil {
		return nil, fmt.Errorf("storing session key: %w", err)
	}
	return key, nil
}

// writeSecret writes a file readable by its owner only, atomically.
func writeSecret(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// randomText returns n characters without look-alikes (no 0/O, 1/l/I), easy
// to type from a phone.
func randomText(n int) string {
	const alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported systems
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func newAuth(password, token string, key []byte, secure bool, now func() time.Time) *auth {
	a := &auth{passwordSum: sha256.Sum256([]byte(password)), key: key, now: now, secure: secure, limiters: map[string]*bucket{}}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("password:"))
	mac.Write(a.passwordSum[:])
	a.key = mac.Sum(nil)
	if token != "" {
		a.tokenSum, a.hasToken = sha256.Sum256([]byte(token)), true
	}
	return a
}

func (a *auth) checkPassword(p string) bool {
	sum := sha256.Sum256([]byte(p))
	return subtle.ConstantTimeCompare(sum[:], a.passwordSum[:]) == 1
}

// newSession returns a cookie value: expiry, random id, MAC.
func (a *auth) newSession() string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(a.now().Add(sessionTTL).Unix()))
	rand.Read(b[8:])
	return base64.RawURLEncoding.EncodeToString(b[:]) + "." + base64.RawURLEncoding.EncodeToString(a.sign(b[:]))
}

func (a *auth) sign(b []byte) []byte {
	m := hmac.New(sha256.New, a.key)
	m.Write(b)
	return m.Sum(nil)
}

// session validates a cookie value and returns a short, non-secret name
// for it (for the event log).
func (a *auth) session(v string) (who string, ok bool) {
	body, sig, found := strings.Cut(v, ".")
	if !found || len(v) > 200 {
		return "", false
	}
	b, err1 := base64.RawURLEncoding.DecodeString(body)
	s, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil || len(b) != 24 || !hmac.Equal(s, a.sign(b)) {
		return "", false
	}
	if a.now().Unix() > int64(binary.BigEndian.Uint64(b[:8])) {
		return "", false
	}
	return "session " + hex.EncodeToString(b[8:12]), true
}

// identify returns who made the request, or ok=false if nobody known.
func (a *auth) identify(r *http.Request) (who string, bearer, ok bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") || !a.hasToken {
			return "", true, false
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) != 1 {
			return "", true, false
		}
		return "token", true, true
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", false, false
	}
	who, ok = a.session(c.Value)
	return who, false, ok
}

func (a *auth) setSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: a.newSession(), Path: "/", MaxAge: int(sessionTTL.Seconds()),
		HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteStrictMode})
}

func (a *auth) clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteStrictMode})
}

// allowLogin takes one login attempt from the client's bucket.
func (a *auth) allowLogin(r *http.Request) (ok bool, retry time.Duration) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.limiters[host]
	if b == nil {
		if len(a.limiters) >= maxLimiters {
			// Drop full buckets first; they carry no information.
			for k, v := range a.limiters {
				if refill(v, now) >= loginBurst {
					delete(a.limiters, k)
				}
			}
			if len(a.limiters) >= maxLimiters {
				return false, loginRefill
			}
		}
		b = &bucket{tokens: loginBurst, at: now}
		a.limiters[host] = b
	}
	b.tokens, b.at = refill(b, now), now
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) * float64(loginRefill))
	}
	b.tokens--
	return true, 0
}

func refill(b *bucket, now time.Time) float64 {
	return min(loginBurst, b.tokens+float64(now.Sub(b.at))/float64(loginRefill))
}

// sameOrigin refuses cross-site state changes: a browser POST carries an
// Origin (or at least a Referer) header, and it must name this host.
func sameOrigin(r *http.Request) bool {
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	if src == "" || src == "null" {
		return false
	}
	u, err := url.Parse(src)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}
