package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/pikit/pikit/internal/httpapi"
	"github.com/pikit/pikit/irlamp"
)

const (
	// maxBody bounds webhook bodies (GitHub caps its payloads at 25 MB,
	// but the events this program listens to are a few KB).
	maxBody = 1 << 20
	// octopusSecretHeader is the header an Octopus subscription sends the
	// webhook secret in (its "Headers" setting).
	octopusSecretHeader = "X-Buildlamp-Secret"
)

// githubEvents are the GitHub webhook events that re-poll GitHub; others
// (after a valid signature) are acknowledged and ignored.
var githubEvents = map[string]bool{"status": true, "check_run": true, "check_suite": true, "workflow_run": true}

// server serves GET /status and the webhooks.
type server struct {
	c      *controller
	lamp   func() irlamp.State
	secret []byte // webhook secret; nil: no webhooks
	// triggers re-poll the sources at once.
	triggerOctopus func()
	triggerGitHub  func()
	log            *slog.Logger
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// allow wraps h so that other methods get 405 with an Allow header.
func allow(h http.HandlerFunc, methods ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, m := range methods {
			if r.Method == m {
				h(w, r)
				return
			}
		}
		w.Header().Set("Allow", strings.Join(methods, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
	})
}

// statusHandler serves GET /status.
func (s *server) statusHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/status", allow(s.status, http.MethodGet, http.MethodHead))
	return mux
}

// webhookHandler serves the webhooks.
func (s *server) webhookHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/webhooks/octopus", allow(s.octopusHook, http.MethodPost))
	mux.Handle("/webhooks/github", allow(s.githubHook, http.MethodPost))
	return mux
}

// handler serves everything on one address (when -status-addr and
// -webhook-addr are the same).
func (s *server) handler(status, webhooks bool) http.Handler {
	mux := http.NewServeMux()
	if status {
		mux.Handle("/status", s.statusHandler())
	}
	if webhooks {
		mux.Handle("/webhooks/", s.webhookHandler())
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
	})
	return httpapi.SecurityHeaders(mux)
}

type statusJSON struct {
	// State is the worst target's state (see keys), or "starting" until
	// every target has been read.
	State string `json:"state"`
	// Colour is what the lamp should show for it: a colour key or "off".
	Colour string `json:"colour"`
	Quiet  bool   `json:"quiet"`
	// Lamp is what the lamp is believed to show.
	Lamp      lampJSON     `json:"lamp"`
	Targets   []targetJSON `json:"targets"`
	UpdatedAt *time.Time   `json:"updated_at"`
}

type lampJSON struct {
	On       bool       `json:"on"`
	Colour   string     `json:"colour"`
	LastKey  string     `json:"last_key,omitempty"`
	LastSent *time.Time `json:"last_sent,omitempty"`
	Error    string     `json:"error,omitempty"`
}

type targetJSON struct {
	Name      string     `json:"name"`
	Source    string     `json:"source"`
	State     string     `json:"state"`
	Release   string     `json:"release,omitempty"`
	Step      string     `json:"step,omitempty"`
	Error     string     `json:"error,omitempty"`
	Failures  int        `json:"failures"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	ts, v, _ := s.c.snapshot()
	out := statusJSON{State: "starting", Quiet: v.Quiet, UpdatedAt: timePtr(v.UpdatedAt), Targets: []targetJSON{}}
	if v.Ready {
		out.State, out.Colour = v.State.Key(), v.Colour
	}
	ls := s.lamp()
	out.Lamp = lampJSON{On: ls.On, Colour: ls.Color, LastKey: ls.LastKey, LastSent: timePtr(ls.LastSent)}
	if ls.Err != nil {
		out.Lamp.Error = ls.Err.Error()
	}
	for _, t := range ts {
		tj := targetJSON{Name: t.Name, Source: t.Source, State: "starting", Release: t.Release, Step: t.Step,
			Error: t.Err, Failures: t.Failures, UpdatedAt: timePtr(t.Updated)}
		if t.Known {
			tj.State = t.State.Key()
		}
		out.Targets = append(out.Targets, tj)
	}
	writeJSON(w, http.StatusOK, out)
}

// readBody reads a webhook body, at most maxBody bytes; it answers the
// request itself when it returns false.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body too large"})
		} else {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "could not read the body"})
		}
		return nil, false
	}
	return body, true
}

// octopusHook accepts an Octopus subscription's webhook, authenticated by
// the secret in the X-Buildlamp-Secret header, and re-polls Octopus. The
// payload itself is not needed: the poll reads the state.
func (s *server) octopusHook(w http.ResponseWriter, r *http.Request) {
	got := r.Header.Get(octopusSecretHeader)
	if got == "" {
		s.log.Warn("octopus webhook without the secret header", "remote", r.RemoteAddr)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing " + octopusSecretHeader + " header"})
		return
	}
	// Compare digests: constant time, and no length leak.
	gs, ws := sha256.Sum256([]byte(got)), sha256.Sum256(s.secret)
	if !hmac.Equal(gs[:], ws[:]) {
		s.log.Warn("octopus webhook with a wrong secret", "remote", r.RemoteAddr)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "wrong secret"})
		return
	}
	if _, ok := readBody(w, r); !ok {
		return
	}
	if s.triggerOctopus == nil {
		writeJSON(w, http.StatusAccepted, map[string]string{"result": "ignored: no Octopus targets"})
		return
	}
	s.triggerOctopus()
	writeJSON(w, http.StatusAccepted, map[string]string{"result": "polling"})
}

// githubHook accepts a GitHub webhook: the X-Hub-Signature-256 HMAC of the
// body with the secret must match. Events other than statuses and checks
// are acknowledged and ignored.
func (s *server) githubHook(w http.ResponseWriter, r *http.Request) {
	sig := r.Header.Get("X-Hub-Signature-256")
	if sig == "" {
		s.log.Warn("github webhook without a signature", "remote", r.RemoteAddr)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing X-Hub-Signature-256 header"})
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	if !validSignature(s.secret, body, sig) {
		s.log.Warn("github webhook with a wrong signature", "remote", r.RemoteAddr)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "wrong signature"})
		return
	}
	event := r.Header.Get("X-GitHub-Event")
	switch {
	case event == "ping":
		writeJSON(w, http.StatusOK, map[string]string{"result": "pong"})
	case !githubEvents[event]:
		writeJSON(w, http.StatusAccepted, map[string]string{"result": "ignored event"})
	case s.triggerGitHub == nil:
		writeJSON(w, http.StatusAccepted, map[string]string{"result": "ignored: no GitHub targets"})
	default:
		s.triggerGitHub()
		writeJSON(w, http.StatusAccepted, map[string]string{"result": "polling"})
	}
}

// validSignature checks "sha256=<hex HMAC-SHA256 of body>" in constant
// time.
func validSignature(secret, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}
