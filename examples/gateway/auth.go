package main

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

const tokenFile = "token"

// loadToken returns the configured token, or the one stored in the data
// dir, or a new one it generates and stores (mode 0600); generated reports
// the last case, so that the program prints it once.
func loadToken(dataDir, configured string) (token string, generated bool, err error) {
	if configured != "" {
		return configured, false, nil
	}
	path := filepath.Join(dataDir, tokenFile)
	if b, err := os.ReadFile(path); err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, false, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("reading token: %w", err)
	}
	var raw [20]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", false, err
	}
	token = hex.EncodeToString(raw[:])
	if err := writeFileAtomic(path, []byte(token+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("storing generated token: %w", err)
	}
	return token, true, nil
}

// auth checks bearer tokens in constant time: both sides are hashed first,
// so neither the content nor the length of the token leaks through timing.
type auth struct {
	sum [32]byte
}

func newAuth(token string) *auth { return &auth{sum: sha256.Sum256([]byte(token))} }

// ok reports whether r carries "Authorization: Bearer <token>".
func (a *auth) ok(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	scheme, tok, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(sum[:], a.sum[:]) == 1
}
