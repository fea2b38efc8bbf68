package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// startServer serves a simulated camera of small frames at 50 fps on
// loopback.
func startServer(t *testing.T) string {
	t.Helper()
	h, bc, err := newSimServer(simConfig{FPS: 50, Width: 160, Height: 120, Idle: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bc.Close() })
	srv := httptest.NewServer(h) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestLoad(t *testing.T) {
	base := startServer(t)
	rep, err := load(context.Background(), config{URL: base + "/stream.mjpg", Viewers: 4, Slow: 1, Duration: time.Second,
		Header: http.Header{"X-Test": {"1"}}})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep.print(&out)
	t.Logf("report:\n%s", out.String())
	if rep.Frames == 0 || rep.Corrupt != 0 || rep.Errors != 0 {
		t.Errorf("frames %d, corrupt %d, errors %d (%q); want frames and no errors", rep.Frames, rep.Corrupt, rep.Errors, rep.ErrorSamples)
	}
	if rep.Connects != 4 || rep.Bytes == 0 {
		t.Errorf("connects %d, bytes %d; want 4 connections and some bytes", rep.Connects, rep.Bytes)
	}
	if rep.FPS.Min <= 0 || rep.FirstFrameMax <= 0 || rep.AgeMax <= 0 {
		t.Errorf("fps %+v, first frame max %s, age max %s; want all measured", rep.FPS, rep.FirstFrameMax, rep.AgeMax)
	}
}

func TestLoadCycleWithStats(t *testing.T) {
	base := startServer(t)
	rep, err := load(context.Background(), config{URL: base + "/stream.mjpg", Viewers: 3, Duration: 3 * time.Second, // long enough for a loaded machine to cycle
		Cycle: true, CyclePeriod: 200 * time.Millisecond, StatsURL: base + "/stats"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Frames == 0 || rep.Errors != 0 {
		t.Errorf("frames %d, errors %d (%q)", rep.Frames, rep.Errors, rep.ErrorSamples)
	}
	if rep.Connects <= 3 {
		t.Errorf("%d connections, want reconnections", rep.Connects)
	}
	if rep.Server == nil || rep.Server.HeapInuseBefore == 0 || rep.Server.HeapInuseAfter == 0 {
		t.Errorf("server memory %+v, want it measured", rep.Server)
	}
}

func TestLoadReportsHTTPErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "camera: stream unavailable", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	rep, err := load(context.Background(), config{URL: srv.URL, Viewers: 2, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Frames != 0 || rep.Errors == 0 || len(rep.ErrorSamples) == 0 || !strings.Contains(rep.ErrorSamples[0], "503") {
		t.Errorf("frames %d, errors %d %q; want 503 errors", rep.Frames, rep.Errors, rep.ErrorSamples)
	}
}

func TestRunRefuses(t *testing.T) {
	for _, args := range [][]string{
		{"-url", "http://example.com/stream.mjpg"},
		{"-url", "http://10.0.0.1:8080/stream.mjpg"},
		{"-url", "http://[2001:db8::1]/"},
		{"-url", "ftp://127.0.0.1/"},
		{"-url", "http://127.0.0.1/", "-stats", "http://192.0.2.1/stats"},
		{"-viewers", "0"},
		{"-viewers", "2", "-slow", "3"},
		{"-duration", "1h"},
		{"-header", "no colon"},
		{"-serve-sim", "0.0.0.0:8080"},
		{"-serve-sim", ":8080"},
		{"extra"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, &stdout, &stderr)
		if code == 0 {
			t.Errorf("run(%q) succeeded", args)
		}
		if stderr.Len() == 0 {
			t.Errorf("run(%q) said nothing", args)
		}
	}
}

func TestCheckLoopbackURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"http://127.0.0.1:8080/stream.mjpg": true,
		"http://127.1.2.3/":                 true,
		"https://localhost/x":               true,
		"http://[::1]:80/":                  true,
		"http://128.0.0.1/":                 false,
		"http://localhost.example.com/":     false,
		"http://[::2]/":                     false,
	} {
		if err := checkLoopbackURL(u); (err == nil) != ok {
			t.Errorf("checkLoopbackURL(%q) = %v", u, err)
		}
	}
}

// Whatever a name resolves to, the dialer connects only to loopback; the
// check runs before connect, so no packet leaves.
func TestDialerRefusesOtherAddresses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, err := loopbackDialer.DialContext(ctx, "tcp", "192.0.2.1:80"); err == nil {
		c.Close()
		t.Fatal("dialed a TEST-NET address")
	} else if !strings.Contains(err.Error(), "not a loopback address") {
		t.Fatalf("dial error %v, want the loopback refusal", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := loopbackDialer.DialContext(ctx, "tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("dialing loopback: %v", err)
	}
	c.Close()
}

func TestPartReader(t *testing.T) {
	jpeg := []byte{0xff, 0xd8, 1, 2, 3, 0xff, 0xd9}
	bad := []byte{0xff, 0xd8, 1, 2, 3, 4, 5}
	var s bytes.Buffer
	s.WriteString("--b\r\nContent-Type: image/jpeg\r\nContent-Length: 7\r\nX-Timestamp: 1700000000.250000\r\n\r\n")
	s.Write(jpeg)
	s.WriteString("\r\n--b\r\ncontent-length: 7\r\n\r\n")
	s.Write(bad)
	s.WriteString("\r\n--b--\r\n")
	pr := newPartReader(&s, "b")
	p, err := pr.next()
	if err != nil || p.size != 7 || !p.intact || !p.ts.Equal(time.Unix(1700000000, 250_000_000)) {
		t.Fatalf("first part %+v, %v", p, err)
	}
	p, err = pr.next()
	if err != nil || p.intact || !p.ts.IsZero() {
		t.Fatalf("second part %+v, %v; want a corrupt part without timestamp", p, err)
	}
	if _, err := pr.next(); err == nil || err.Error() != "EOF" {
		t.Fatalf("after the closing delimiter: %v, want EOF", err)
	}

	pr = newPartReader(strings.NewReader("--b\r\nContent-Type: image/jpeg\r\n\r\nxx"), "b")
	if _, err := pr.next(); err == nil || !strings.Contains(err.Error(), "Content-Length") {
		t.Errorf("part without Content-Length: %v", err)
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 100; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	if q := h.quantile(0.5); q < 49*time.Millisecond || q > 51*time.Millisecond {
		t.Errorf("p50 = %s", q)
	}
	if m := h.max(); m != 100*time.Millisecond {
		t.Errorf("max = %s", m)
	}
	h.add(time.Hour)
	if m := h.max(); m != time.Hour {
		t.Errorf("max = %s", m)
	}
}
