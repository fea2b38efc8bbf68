package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pikit/pikit/audio"
)

//go:embed web
var webFS embed.FS

// streamStats is what the page and /metrics show of the camera stream.
type streamStats struct {
	Viewers    int
	FramesSent uint64
}

// stream is the camera side of the feeder: the broadcaster's handlers.
type stream interface {
	MJPEGHandler() http.Handler
	SnapshotHandler() http.Handler
	StreamStats() streamStats
}

// server is the feeder's HTTP surface.
type server struct {
	feeder  *feeder
	auth    *auth
	player  audio.Player
	sound   *audio.Clip
	stream  stream
	devices map[string]string
	log     *slog.Logger
	started time.Time

	calling       atomic.Bool
	calls         atomic.Int64
	callsRejected atomic.Int64
	callErrors    atomic.Int64

	// Audio state changes for the event stream; feeder changes come from
	// feeder.Changed.
	mu      sync.Mutex
	changed chan struct{}
}

func newServer(f *feeder, a *auth, player audio.Player, sound *audio.Clip, st stream, devices map[string]string, log *slog.Logger) *server {
	return &server{feeder: f, auth: a, player: player, sound: sound, stream: st, devices: devices, log: log,
		started: time.Now(), changed: make(chan struct{})}
}

func (s *server) notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *server) changes() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// who is the identity of an authenticated request, for the event log.
type whoKey struct{}

func (s *server) handler() http.Handler {
	static, _ := fs.Sub(webFS, "web")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(http.FileServerFS(static), time.Hour)))

	mux.Handle("POST /logout", s.require(http.HandlerFunc(s.logout)))
	mux.Handle("GET /{$}", s.require(http.HandlerFunc(s.index)))
	mux.Handle("GET /stream.mjpg", s.require(s.stream.MJPEGHandler()))
	mux.Handle("GET /snapshot.jpg", s.require(s.stream.SnapshotHandler()))
	mux.Handle("POST /api/treat", s.require(http.HandlerFunc(s.treat)))
	mux.Handle("POST /api/call", s.require(http.HandlerFunc(s.call)))
	mux.Handle("GET /api/status", s.require(http.HandlerFunc(s.status)))
	mux.Handle("GET /api/events", s.require(http.HandlerFunc(s.events)))
	mux.Handle("GET /metrics", s.require(http.HandlerFunc(s.metrics)))
	return securityHeaders(mux)
}

// require lets authenticated requests through. Browsers without a session
// are sent to the login page; API clients get 401. State-changing requests
// authenticated by cookie must come from this site's own pages.
func (s *server) require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, bearer, ok := s.auth.identify(r)
		if !ok {
			if r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/api/") && r.URL.Path != "/metrics" && !bearer {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="treatfeeder"`)
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "unauthorized: log in or send Authorization: Bearer <token>"})
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !bearer && !sameOrigin(r) {
			writeJSON(w, http.StatusForbidden, map[string]any{"error": "cross-origin request refused"})
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), whoKey{}, who)))
	})
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'")
		next.ServeHTTP(w, r)
	})
}

func cacheFor(next http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", fmt.Sprintf("private, max-age=%d", int(d.Seconds())))
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	st := s.feeder.Status()
	code := http.StatusOK
	if st.Fault != "" {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"ok": code == http.StatusOK, "hopper": st.Hopper})
}

func (s *server) servePage(w http.ResponseWriter, name string, code int) {
	b, err := webFS.ReadFile("web/" + name)
	if err != nil {
		http.Error(w, "page missing", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(b)
}

func (s *server) index(w http.ResponseWriter, r *http.Request) {
	s.servePage(w, "index.html", http.StatusOK)
}

func (s *server) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := s.auth.identify(r); ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.servePage(w, "login.html", http.StatusOK)
}

func (s *server) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-origin login refused", http.StatusForbidden)
		return
	}
	if ok, retry := s.auth.allowLogin(r); !ok {
		w.Header().Set("Retry-After", fmt.Sprint(int(math.Ceil(retry.Seconds()))))
		http.Redirect(w, r, "/login?error=slow", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad login form", http.StatusBadRequest)
		return
	}
	if !s.auth.checkPassword(r.PostForm.Get("password")) {
		s.log.Warn("failed login", "remote", r.RemoteAddr)
		http.Redirect(w, r, "/login?error=wrong", http.StatusSeeOther)
		return
	}
	s.auth.setSession(w)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *server) logout(w http.ResponseWriter, r *http.Request) {
	s.auth.clearSession(w)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (s *server) treat(w http.ResponseWriter, r *http.Request) {
	who, _ := r.Context().Value(whoKey{}).(string)
	_, err := s.feeder.Dispense(r.Context(), who)
	var le *limitError
	var fe *faultError
	switch {
	case err == nil:
		s.log.Info("treat given", "who", who)
		writeJSON(w, http.StatusOK, s.statusDoc())
	case errors.Is(err, errBusy):
		writeJSON(w, http.StatusConflict, map[string]any{"error": "busy"})
	case errors.As(err, &le):
		secs := int(math.Ceil(le.RetryAfter.Seconds()))
		w.Header().Set("Retry-After", fmt.Sprint(secs))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": le.Message, "reason": le.Reason, "retry_after_s": secs})
	case errors.As(err, &fe), errors.Is(err, errStopping):
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": err.Error()})
	default:
		s.log.Error("dispense failed", "who", who, "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": err.Error(), "status": s.statusDoc()})
	}
}

func (s *server) call(w http.ResponseWriter, r *http.Request) {
	if !s.calling.CompareAndSwap(false, true) {
		s.callsRejected.Add(1)
		writeJSON(w, http.StatusConflict, map[string]any{"error": "busy"})
		return
	}
	s.notify()
	// The sound plays to its end even if the phone that asked goes away;
	// a bound stops a wedged player from holding the button forever.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.sound.Duration()+10*time.Second)
	err := s.player.Play(ctx, s.sound)
	cancel()
	s.calling.Store(false)
	s.notify()
	switch {
	case err == nil:
		s.calls.Add(1)
		writeJSON(w, http.StatusOK, map[string]any{"played_s": s.sound.Duration().Seconds()})
	case errors.Is(err, audio.ErrBusy):
		s.callsRejected.Add(1)
		writeJSON(w, http.StatusConflict, map[string]any{"error": "busy"})
	default:
		s.callErrors.Add(1)
		s.log.Error("call failed", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": err.Error()})
	}
}

// statusDoc is the /api/status document.
type statusDoc struct {
	feederStatus
	Devices map[string]string `json:"devices"`
	Calling bool              `json:"calling"`
	Viewers int               `json:"viewers"`
	Now     time.Time         `json:"now"`
}

func (s *server) statusDoc() statusDoc {
	return statusDoc{feederStatus: s.feeder.Status(), Devices: s.devices, Calling: s.calling.Load(),
		Viewers: s.stream.StreamStats().Viewers, Now: s.feeder.cfg.Now()}
}

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.statusDoc())
}

// events streams the status as Server-Sent Events: once on connect, then on
// every change, with a comment every 15 s so proxies keep the line open.
func (s *server) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		feederChanged, serverChanged := s.feeder.Changed(), s.changes()
		b, _ := json.Marshal(s.statusDoc())
		if _, err := fmt.Fprintf(w, "event: status\ndata: %s\n\n", b); err != nil || rc.Flush() != nil {
			return
		}
		if !waitChange(r.Context(), w, rc, keepalive.C, feederChanged, serverChanged) {
			return
		}
	}
}

// waitChange waits for either change channel, writing keep-alive comments
// meanwhile; false means the client is gone.
func waitChange(ctx context.Context, w io.Writer, rc *http.ResponseController, tick <-chan time.Time, a, b <-chan struct{}) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-a:
			return true
		case <-b:
			return true
		case <-tick:
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
				return false
			}
		}
	}
}

func (s *server) metrics(w http.ResponseWriter, r *http.Request) {
	c := s.feeder.Counters()
	st := s.feeder.Status()
	ss := s.stream.StreamStats()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	var b strings.Builder
	metric := func(name, typ, help string, samples ...string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, s := range samples {
			b.WriteString(s)
			b.WriteByte('\n')
		}
	}
	metric("treatfeeder_dispenses_total", "counter", "Treats dispensed since start.", fmt.Sprintf("treatfeeder_dispenses_total %d", c.Dispenses))
	reasons := []string{reasonBusy, reasonDailyLimit, reasonInterval, reasonFault, reasonStopping}
	sort.Strings(reasons)
	var rs []string
	for _, r := range reasons {
		rs = append(rs, fmt.Sprintf("treatfeeder_rejections_total{reason=%q} %d", r, c.Rejections[r]))
	}
	metric("treatfeeder_rejections_total", "counter", "Treat requests refused, by reason.", rs...)
	metric("treatfeeder_servo_errors_total", "counter", "Servo commands that failed.", fmt.Sprintf("treatfeeder_servo_errors_total %d", c.ServoErrors))
	metric("treatfeeder_calls_total", "counter", "Call sounds played.", fmt.Sprintf("treatfeeder_calls_total %d", s.calls.Load()))
	metric("treatfeeder_calls_rejected_total", "counter", "Call requests refused because a call was playing.", fmt.Sprintf("treatfeeder_calls_rejected_total %d", s.callsRejected.Load()))
	metric("treatfeeder_call_errors_total", "counter", "Call sounds that failed to play.", fmt.Sprintf("treatfeeder_call_errors_total %d", s.callErrors.Load()))
	metric("treatfeeder_treats_today", "gauge", "Treats given on the current local day.", fmt.Sprintf("treatfeeder_treats_today %d", st.TreatsToday))
	open := 0
	if st.Hopper == "open" {
		open = 1
	}
	metric("treatfeeder_hopper_open", "gauge", "1 while the hopper is open (or could not be closed).", fmt.Sprintf("treatfeeder_hopper_open %d", open))
	metric("treatfeeder_stream_viewers", "gauge", "Viewers of the camera stream now.", fmt.Sprintf("treatfeeder_stream_viewers %d", ss.Viewers))
	metric("treatfeeder_stream_frames_sent_total", "counter", "Camera frames sent to viewers.", fmt.Sprintf("treatfeeder_stream_frames_sent_total %d", ss.FramesSent))
	io.WriteString(w, b.String())
}
