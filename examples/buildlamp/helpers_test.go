package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pikit/pikit/irlamp"
	"github.com/pikit/pikit/octopus/octopustest"
)

// syncBuffer is a bytes.Buffer safe for the program and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wait is the deadline of every waitFor in these tests: generous, since
// nothing here is a timed assertion.
const wait = 15 * time.Second

// prog is the program running in-process, on a simulated lamp.
type prog struct {
	t              *testing.T
	cancel         context.CancelFunc
	done           chan int
	code           int
	exited         bool
	stdout, stderr *syncBuffer
	sim            *irlamp.Sim
	secrets        []string // must never appear in the output
}

// startProg runs the program with args and env (nil: empty) on an instant
// simulated lamp. The test ends it with stop, or it is stopped at cleanup.
func startProg(t *testing.T, args []string, env map[string]string, h hooks) *prog {
	t.Helper()
	sim, err := irlamp.NewSim(irlamp.SimOptions{Instant: true})
	if err != nil {
		t.Fatal(err)
	}
	p := &prog{t: t, done: make(chan int, 1), stdout: &syncBuffer{}, stderr: &syncBuffer{}, sim: sim}
	if h.openLamp == nil {
		h.openLamp = func(string) (irlamp.Transmitter, error) { return sim, nil }
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	getenv := func(k string) string { return env[k] }
	go func() { p.done <- runWith(ctx, args, getenv, p.stdout, p.stderr, h) }()
	t.Cleanup(func() { p.stop() })
	return p
}

// stop cancels the program and returns its exit status.
func (p *prog) stop() int {
	p.t.Helper()
	if p.exited {
		return p.code
	}
	p.cancel()
	select {
	case p.code = <-p.done:
	case <-time.After(wait):
		p.t.Fatalf("program did not stop; stdout:\n%s\nstderr:\n%s", p.stdout, p.stderr)
	}
	p.exited = true
	p.checkSecrets()
	return p.code
}

// exit waits for the program to end by itself.
func (p *prog) exit() int {
	p.t.Helper()
	select {
	case p.code = <-p.done:
	case <-time.After(wait):
		p.t.Fatalf("program did not exit; stdout:\n%s\nstderr:\n%s", p.stdout, p.stderr)
	}
	p.exited = true
	p.checkSecrets()
	return p.code
}

func (p *prog) checkSecrets() {
	p.t.Helper()
	for _, s := range p.secrets {
		if s != "" && (strings.Contains(p.stdout.String(), s) || strings.Contains(p.stderr.String(), s)) {
			p.t.Errorf("secret %q printed; stdout:\n%s\nstderr:\n%s", s, p.stdout, p.stderr)
		}
	}
}

// colour returns what the simulated lamp shows: a colour, or "off".
func (p *prog) colour() string {
	st := p.sim.State()
	if !st.On {
		return colourOff
	}
	return st.Color
}

// waitColour waits until the simulated lamp shows colour ("off": is off).
func (p *prog) waitColour(colour string) {
	p.t.Helper()
	deadline := time.Now().Add(wait)
	for p.colour() != colour {
		if time.Now().After(deadline) {
			p.t.Fatalf("lamp shows %s, want %s; stdout:\n%s\nstderr:\n%s", p.colour(), colour, p.stdout, p.stderr)
		}
		select {
		case code := <-p.done:
			p.exited, p.code = true, code
			p.t.Fatalf("program exited with %d, lamp %s, want %s; stdout:\n%s\nstderr:\n%s", code, p.colour(), colour, p.stdout, p.stderr)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// line waits for a printed line starting with prefix and returns the rest.
func (p *prog) line(prefix string) string {
	p.t.Helper()
	var rest string
	waitFor(p.t, wait, "a line "+strconv.Quote(prefix)+" on stdout", func() bool {
		for _, l := range strings.Split(p.stdout.String(), "\n") {
			if r, ok := strings.CutPrefix(l, prefix); ok {
				rest = r
				return true
			}
		}
		select {
		case code := <-p.done:
			p.exited, p.code = true, code
			p.t.Fatalf("program exited with %d; stdout:\n%s\nstderr:\n%s", code, p.stdout, p.stderr)
		default:
		}
		return false
	})
	return rest
}

// statusURL returns the URL of GET /status (the program needs -status-addr).
func (p *prog) statusURL() string { return p.line("status on ") }

// status fetches /status.
func (p *prog) status() statusJSON {
	p.t.Helper()
	res, err := http.Get(p.statusURL())
	if err != nil {
		p.t.Fatal(err)
	}
	defer res.Body.Close()
	var st statusJSON
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		p.t.Fatal(err)
	}
	return st
}

// newOctopus starts a fake Octopus server with projects Website and Billing
// API and environments Staging and Production.
func newOctopus(t *testing.T) *octopustest.Server {
	t.Helper()
	s := octopustest.NewServer(octopustest.Options{})
	t.Cleanup(s.Close)
	s.AddProject("", "Website")
	s.AddProject("", "Billing API")
	s.AddEnvironment("", "Staging")
	s.AddEnvironment("", "Production")
	return s
}

func apply(t *testing.T, s *octopustest.Server, project, env string, ph octopustest.Phase) {
	t.Helper()
	if err := s.Apply(project, env, ph); err != nil {
		t.Fatal(err)
	}
}

// octoArgs are the flags for the fake Octopus server.
func octoArgs(s *octopustest.Server, extra ...string) []string {
	return append([]string{"-octopus-url", s.URL, "-octopus-key", octopustest.DefaultAPIKey, "-poll", "100ms"}, extra...)
}

// fakeGitHub serves the commit status and check runs of octo/web@main.
type fakeGitHub struct {
	t     *testing.T
	srv   *httptest.Server
	token string

	mu       sync.Mutex
	statuses []map[string]any
	runs     []map[string]any
	// rawStatus and rawRuns replace the bodies when set.
	rawStatus, rawRuns string
	// failCode answers every request with this status when set.
	failCode    int
	failHeaders map[string]string
	hang        bool
	requests    int
	badAuth     int // requests without the right token
	etagHits    int
}

func newFakeGitHub(t *testing.T, token string) *fakeGitHub {
	g := &fakeGitHub{t: t, token: token}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *fakeGitHub) set(f func(g *fakeGitHub)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f(g)
}

func ghStatus(state, context string) map[string]any {
	return map[string]any{"state": state, "context": context, "description": context + " " + state,
		"target_url": "https://ci.example.com/1", "created_at": "2026-11-22T10:00:00Z", "updated_at": "2026-11-22T10:00:00Z"}
}

func ghRun(name, st string, conclusion any) map[string]any {
	return map[string]any{"id": 1, "name": name, "head_sha": "0123456789abcdef0123456789abcdef01234567", "status": st,
		"conclusion": conclusion, "started_at": "2026-11-22T10:00:00Z", "completed_at": nil,
		"html_url": "https://github.com/octo/web/runs/1", "app": map[string]any{"slug": "github-actions"}}
}

func (g *fakeGitHub) serve(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.requests++
	if g.token != "" && r.Header.Get("Authorization") != "Bearer "+g.token {
		g.badAuth++
		g.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}`)
		return
	}
	if r.Header.Get("Accept") != "application/vnd.github+json" {
		g.mu.Unlock()
		http.Error(w, "bad accept", http.StatusBadRequest)
		return
	}
	if g.hang {
		g.mu.Unlock()
		<-r.Context().Done()
		return
	}
	if g.failCode != 0 {
		for k, v := range g.failHeaders {
			w.Header().Set(k, v)
		}
		code := g.failCode
		g.mu.Unlock()
		w.WriteHeader(code)
		fmt.Fprint(w, `{"message":"nope"}`)
		return
	}
	var body string
	switch r.URL.Path {
	case "/repos/octo/web/commits/main/status":
		body = g.rawStatus
		if body == "" {
			state := "success"
			if len(g.statuses) == 0 {
				state = "pending"
			}
			for _, s := range g.statuses {
				switch s["state"] {
				case "failure", "error":
					state = "failure"
				case "pending":
					if state != "failure" {
						state = "pending"
					}
				}
			}
			b, _ := json.Marshal(map[string]any{"state": state, "sha": "0123456789abcdef0123456789abcdef01234567",
				"total_count": len(g.statuses), "statuses": append([]map[string]any{}, g.statuses...),
				"repository": map[string]any{"full_name": "octo/web"}})
			body = string(b)
		}
	case "/repos/octo/web/commits/main/check-runs":
		body = g.rawRuns
		if body == "" {
			page, _ := strconv.Atoi(r.URL.Query().Get("page"))
			per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
			page, per = max(page, 1), max(per, 30)
			lo, hi := min((page-1)*per, len(g.runs)), min(page*per, len(g.runs))
			b, _ := json.Marshal(map[string]any{"total_count": len(g.runs), "check_runs": append([]map[string]any{}, g.runs[lo:hi]...)})
			body = string(b)
		}
	default:
		g.mu.Unlock()
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"Not Found"}`)
		return
	}
	sum := sha256.Sum256([]byte(body))
	etag := fmt.Sprintf(`"%x"`, sum[:8])
	if r.Header.Get("If-None-Match") == etag {
		g.etagHits++
		g.mu.Unlock()
		w.WriteHeader(http.StatusNotModified)
		return
	}
	g.mu.Unlock()
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	fmt.Fprint(w, body)
}
