package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pikit/pikit/audio"
	"periph.io/x/conn/v3/physic"
)

const (
	testPassword = "correct horse"
	testToken    = "s3cret-token"
)

// fakeStream serves a fixed JPEG; the real broadcaster is tested in camera.
type fakeStream struct{}

func (fakeStream) MJPEGHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=frame")
		io.WriteString(w, "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 4\r\n\r\n\xff\xd8\xff\xd9\r\n")
	})
}

func (fakeStream) SnapshotHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write([]byte{0xff, 0xd8, 0xff, 0xd9})
	})
}

func (fakeStream) StreamStats() streamStats { return streamStats{Viewers: 2, FramesSent: 42} }

type serverEnv struct {
	*feederEnv
	srv   *server
	ts    *httptest.Server
	audio *audio.Sim
}

func newServerEnv(t *testing.T, mod func(*feederConfig), audioOpts audio.SimOptions) *serverEnv {
	t.Helper()
	fe := newFeederEnv(t, "", nil, mod)
	player := audio.NewSim(audioOpts)
	t.Cleanup(func() { player.Close() })
	a := newAuth(testPassword, testToken, []byte("0123456789abcdef0123456789abcdef"), false, time.Now)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := newServer(fe.f, a, player, audio.DefaultCall(), fakeStream{}, map[string]string{"servo": "sim", "camera": "sim:640x480@30", "audio": "sim"}, log)
	ts := httptest.NewServer(srv.handler())
	t.Cleanup(ts.Close)
	return &serverEnv{feederEnv: fe, srv: srv, ts: ts, audio: player}
}

// do sends a request with the bearer token (or none if token is ""). It
// reports failures with t.Errorf, so goroutines may call it too.
func (e *serverEnv) do(t *testing.T, method, path, token string, hdr map[string]string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, e.ts.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return &http.Response{}, nil
	}
	defer res.Body.Close()
	var body map[string]any
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
			t.Errorf("%s %s: bad JSON: %v", method, path, err)
		}
	}
	return res, body
}

// login returns a client holding a session cookie.
func (e *serverEnv) login(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	req, _ := http.NewRequest("POST", e.ts.URL+"/login", strings.NewReader(url.Values{"password": {testPassword}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.ts.URL)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Request.URL.Path != "/" || res.StatusCode != 200 {
		t.Fatalf("login ended at %s with %d", res.Request.URL, res.StatusCode)
	}
	return c
}

func TestAuthRequired(t *testing.T) {
	e := newServerEnv(t, nil, audio.SimOptions{})
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/", http.StatusSeeOther},
		{"GET", "/stream.mjpg", http.StatusSeeOther},
		{"GET", "/snapshot.jpg", http.StatusSeeOther},
		{"GET", "/api/status", http.StatusUnauthorized},
		{"GET", "/api/events", http.StatusUnauthorized},
		{"GET", "/metrics", http.StatusUnauthorized},
		{"POST", "/api/treat", http.StatusUnauthorized},
		{"POST", "/api/call", http.StatusUnauthorized},
		{"POST", "/logout", http.StatusUnauthorized},
		{"GET", "/healthz", http.StatusOK},
		{"GET", "/login", http.StatusOK},
		{"GET", "/static/app.js", http.StatusOK},
	} {
		res, _ := e.do(t, tc.method, tc.path, "", nil)
		if res.StatusCode != tc.want {
			t.Errorf("%s %s without auth = %d, want %d", tc.method, tc.path, res.StatusCode, tc.want)
		}
		if res.StatusCode == http.StatusSeeOther && res.Header.Get("Location") != "/login" {
			t.Errorf("%s %s redirects to %q", tc.method, tc.path, res.Header.Get("Location"))
		}
	}
	// A wrong token is refused everywhere, even for GET pages.
	for _, p := range []string{"/", "/api/status"} {
		if res, _ := e.do(t, "GET", p, "wrong", nil); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token = %d", p, res.StatusCode)
		}
	}
	if n := len(e.sim.History()); n != 1 {
		t.Errorf("servo moved %d times without auth (only the start-up close expected)", n)
	}
}

func TestLogin(t *testing.T) {
	e := newServerEnv(t, nil, audio.SimOptions{})
	post := func(password, origin string) *http.Response {
		req, _ := http.NewRequest("POST", e.ts.URL+"/login", strings.NewReader(url.Values{"password": {password}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	if res := post(testPassword, "https://evil.example"); res.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin login = %d", res.StatusCode)
	}
	res := post(testPassword, e.ts.URL)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		t.Fatalf("login = %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == sessionCookie {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Secure {
		t.Fatalf("session cookie %+v", cookie)
	}
	if strings.Contains(cookie.Value, testPassword) {
		t.Error("cookie contains the password")
	}
	// Wrong passwords, then the rate limit (one good attempt used above).
	for i := 0; i < loginBurst-1; i++ {
		if res := post("nope", e.ts.URL); res.Header.Get("Location") != "/login?error=wrong" {
			t.Fatalf("wrong password #%d: %d %q", i, res.StatusCode, res.Header.Get("Location"))
		}
	}
	res = post(testPassword, e.ts.URL)
	if res.Header.Get("Location") != "/login?error=slow" || res.Header.Get("Retry-After") == "" {
		t.Errorf("attempt past the limit = %q, Retry-After %q", res.Header.Get("Location"), res.Header.Get("Retry-After"))
	}
}

func TestSessionCookie(t *testing.T) {
	e := newServerEnv(t, nil, audio.SimOptions{})
	c := e.login(t)
	res, err := c.Get(e.ts.URL + "/api/status")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("status with session: %v %v", res, err)
	}
	res.Body.Close()
	// Cookie-authenticated POSTs must come from our own origin.
	for origin, want := range map[string]int{"": http.StatusForbidden, "https://evil.example": http.StatusForbidden, e.ts.URL: http.StatusOK} {
		req, _ := http.NewRequest("POST", e.ts.URL+"/api/call", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("POST /api/call with session, Origin %q = %d, want %d", origin, res.StatusCode, want)
		}
	}
	// A tampered or expired cookie is refused.
	a := e.srv.auth
	v := a.newSession()
	if _, ok := a.session(v); !ok {
		t.Fatal("fresh session refused")
	}
	if _, ok := a.session(v[:len(v)-2] + "AA"); ok {
		t.Error("tampered session accepted")
	}
	later := newAuth(testPassword, testToken, []byte("0123456789abcdef0123456789abcdef"), false, func() time.Time { return time.Now().Add(sessionTTL + time.Hour) })
	if _, ok := later.session(v); ok {
		t.Error("expired session accepted")
	}
	other := newAuth("new password", testToken, []byte("0123456789abcdef0123456789abcdef"), false, time.Now)
	if _, ok := other.session(v); ok {
		t.Error("session survived a password change")
	}
}

func TestTreatAPI(t *testing.T) {
	e := newServerEnv(t, func(c *feederConfig) { c.DailyLimit = 2 }, audio.SimOptions{})
	res, body := e.do(t, "POST", "/api/treat", testToken, nil)
	if res.StatusCode != 200 || body["treats_today"] != 1.0 || body["hopper"] != "closed" {
		t.Fatalf("first treat = %d %v", res.StatusCode, body)
	}
	res, body = e.do(t, "POST", "/api/treat", testToken, nil)
	if res.StatusCode != http.StatusTooManyRequests || body["retry_after_s"] != 60.0 || res.Header.Get("Retry-After") != "60" {
		t.Fatalf("second treat within a minute = %d %v", res.StatusCode, body)
	}
	e.clock.Advance(time.Minute)
	e.do(t, "POST", "/api/treat", testToken, nil)
	e.clock.Advance(time.Minute)
	res, body = e.do(t, "POST", "/api/treat", testToken, nil)
	if res.StatusCode != http.StatusTooManyRequests || !strings.Contains(body["error"].(string), "daily limit") {
		t.Fatalf("third treat = %d %v", res.StatusCode, body)
	}
	// Status document.
	_, st := e.do(t, "GET", "/api/status", testToken, nil)
	for _, k := range []string{"treats_today", "daily_limit", "next_allowed_at", "hopper", "servo_angle_deg", "last_treat_at", "devices", "recent"} {
		if _, ok := st[k]; !ok {
			t.Errorf("status lacks %q: %v", k, st)
		}
	}
	recent := st["recent"].([]any)
	if len(recent) != 2 || recent[0].(map[string]any)["who"] != "token" || recent[0].(map[string]any)["closed_at"] == nil {
		t.Errorf("recent = %v", recent)
	}
	if st["servo_angle_deg"] != 0.0 || st["devices"].(map[string]any)["camera"] != "sim:640x480@30" {
		t.Errorf("status %v", st)
	}
}

func TestTreatBusy(t *testing.T) {
	e := newServerEnv(t, func(c *feederConfig) { c.OpenTime = 300 * time.Millisecond }, audio.SimOptions{})
	done := make(chan int)
	go func() { res, _ := e.do(t, "POST", "/api/treat", testToken, nil); done <- res.StatusCode }()
	for e.f.Status().Hopper != "open" {
		time.Sleep(time.Millisecond)
	}
	res, body := e.do(t, "POST", "/api/treat", testToken, nil)
	if res.StatusCode != http.StatusConflict || body["error"] != "busy" {
		t.Errorf("treat during a dispense = %d %v", res.StatusCode, body)
	}
	if code := <-done; code != 200 {
		t.Errorf("first treat = %d", code)
	}
}

func TestConcurrentTreatRequests(t *testing.T) {
	e := newServerEnv(t, func(c *feederConfig) { c.MinInterval = 0; c.DailyLimit = 7; c.OpenTime = 2 * time.Millisecond }, audio.SimOptions{})
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest("POST", e.ts.URL+"/api/treat", nil)
			req.Header.Set("Authorization", "Bearer "+testToken)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			mu.Lock()
			codes[res.StatusCode]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	n := cycles(t, e.sim, 90*physic.Degree) // fails on overlap or an open hopper
	if codes[200] != n || n == 0 || n > 7 || codes[200]+codes[409]+codes[429] != 200 {
		t.Errorf("answers %v, servo cycles %d", codes, n)
	}
	if a, _ := e.sim.Angle(); a != 0 || e.f.Status().Hopper != "closed" {
		t.Error("hopper not closed at the end")
	}
}

func TestCallAPI(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	clock := &gatedClock{release: release}
	e := newServerEnv(t, nil, audio.SimOptions{Clock: clock, OnPlay: func(audio.Play) { close(started) }})
	done := make(chan int)
	go func() { res, _ := e.do(t, "POST", "/api/call", testToken, nil); done <- res.StatusCode }()
	<-started
	res, body := e.do(t, "POST", "/api/call", testToken, nil)
	if res.StatusCode != http.StatusConflict || body["error"] != "busy" {
		t.Errorf("call while playing = %d %v", res.StatusCode, body)
	}
	_, st := e.do(t, "GET", "/api/status", testToken, nil)
	if st["calling"] != true {
		t.Errorf("status while calling: %v", st["calling"])
	}
	close(release)
	if code := <-done; code != 200 {
		t.Errorf("call = %d", code)
	}
	plays, _ := e.audio.WaitPlays(context.Background(), 1)
	if len(plays) != 1 || plays[0].Cancelled || plays[0].Clip != audio.DefaultCall() {
		t.Errorf("plays %+v", plays)
	}
}

// gatedClock holds every After until release is closed.
type gatedClock struct{ release chan struct{} }

func (c *gatedClock) Now() time.Time { return time.Now() }
func (c *gatedClock) After(time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	go func() { <-c.release; ch <- time.Now() }()
	return ch
}

func TestEvents(t *testing.T) {
	e := newServerEnv(t, nil, audio.SimOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.ts.URL+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(res.Body)
	next := func() map[string]any {
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var m map[string]any
				if err := json.Unmarshal([]byte(d), &m); err != nil {
					t.Fatal(err)
				}
				return m
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return nil
	}
	if first := next(); first["treats_today"] != 0.0 {
		t.Fatalf("first event %v", first)
	}
	go e.do(t, "POST", "/api/treat", testToken, nil)
	for {
		ev := next()
		if ev["treats_today"] == 1.0 && ev["hopper"] == "closed" {
			break
		}
	}
}

func TestMetricsAndHealth(t *testing.T) {
	e := newServerEnv(t, nil, audio.SimOptions{})
	e.do(t, "POST", "/api/treat", testToken, nil)
	e.do(t, "POST", "/api/treat", testToken, nil)
	res, err := http.NewRequest("GET", e.ts.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Header.Set("Authorization", "Bearer "+testToken)
	mres, err := http.DefaultClient.Do(res)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(mres.Body)
	mres.Body.Close()
	for _, want := range []string{
		"treatfeeder_dispenses_total 1\n",
		`treatfeeder_rejections_total{reason="min_interval"} 1` + "\n",
		"treatfeeder_stream_viewers 2\n",
		"treatfeeder_stream_frames_sent_total 42\n",
		"# TYPE treatfeeder_calls_total counter\n",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q:\n%s", want, b)
		}
	}
	hres, body := e.do(t, "GET", "/healthz", "", nil)
	if hres.StatusCode != 200 || body["hopper"] != "closed" {
		t.Errorf("healthz %d %v", hres.StatusCode, body)
	}
}

func TestPages(t *testing.T) {
	e := newServerEnv(t, nil, audio.SimOptions{})
	c := e.login(t)
	res, err := c.Get(e.ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{`src="/stream.mjpg"`, ">Give a treat<", ">Call<", `src="/static/app.js"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	// The whole page before the stream stays small on a phone.
	total := len(b)
	for _, asset := range []string{"/static/app.js", "/static/style.css"} {
		r, err := c.Get(e.ts.URL + asset)
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("%s: %v %v", asset, r, err)
		}
		a, _ := io.ReadAll(r.Body)
		r.Body.Close()
		total += len(a)
	}
	if total > 50<<10 {
		t.Errorf("page and assets are %d bytes, over 50 KB", total)
	}
	// Logged-in users skip the login page.
	r, _ := (&http.Client{Jar: c.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(e.ts.URL + "/login")
	if r.StatusCode != http.StatusSeeOther {
		t.Errorf("GET /login with a session = %d", r.StatusCode)
	}
}
