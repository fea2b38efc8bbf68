package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pikit/pikit/irlamp"
)

const testSecret = "s3cret-webhook-value-0123456789"

func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

type hookCounts struct{ octopus, github atomic.Int32 }

func newTestServer(t *testing.T) (*httptest.Server, *hookCounts, *controller) {
	var n hookCounts
	c := newController(&fakeLamp{}, defaultColours, quietHours{}, []target{{Name: "Website → Production", Source: "octopus"}, {Name: "octo/web@main", Source: "github"}},
		time.Now, io.Discard, slog.New(slog.DiscardHandler))
	s := &server{c: c, lamp: func() irlamp.State { return irlamp.State{On: true, Color: "RED", LastKey: "RED"} },
		secret: []byte(testSecret), log: slog.New(slog.DiscardHandler),
		triggerOctopus: func() { n.octopus.Add(1) }, triggerGitHub: func() { n.github.Add(1) }}
	srv := httptest.NewServer(s.handler(true, true))
	t.Cleanup(srv.Close)
	return srv, &n, c
}

func do(t *testing.T, method, url string, headers map[string]string, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	json.NewDecoder(res.Body).Decode(&m)
	return res, m
}

func TestGitHubWebhook(t *testing.T) {
	srv, n, _ := newTestServer(t)
	url := srv.URL + "/webhooks/github"
	body := `{"action":"completed","check_run":{"name":"build","status":"completed","conclusion":"failure"}}`
	for _, tc := range []struct {
		name    string
		method  string
		headers map[string]string
		body    string
		code    int
		trigger bool
	}{
		{"valid check_run", "POST", map[string]string{"X-GitHub-Event": "check_run", "X-Hub-Signature-256": sign(testSecret, body)}, body, 202, true},
		{"valid status", "POST", map[string]string{"X-GitHub-Event": "status", "X-Hub-Signature-256": sign(testSecret, body)}, body, 202, true},
		{"valid workflow_run", "POST", map[string]string{"X-GitHub-Event": "workflow_run", "X-Hub-Signature-256": sign(testSecret, body)}, body, 202, true},
		{"valid check_suite", "POST", map[string]string{"X-GitHub-Event": "check_suite", "X-Hub-Signature-256": sign(testSecret, body)}, body, 202, true},
		{"ping", "POST", map[string]string{"X-GitHub-Event": "ping", "X-Hub-Signature-256": sign(testSecret, "{}")}, "{}", 200, false},
		{"other event ignored", "POST", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(testSecret, body)}, body, 202, false},
		{"wrong signature", "POST", map[string]string{"X-GitHub-Event": "check_run", "X-Hub-Signature-256": sign("another-secret-0123456", body)}, body, 401, false},
		{"signature of another body", "POST", map[string]string{"X-GitHub-Event": "check_run", "X-Hub-Signature-256": sign(testSecret, body+" ")}, body, 401, false},
		{"sha1 signature", "POST", map[string]string{"X-GitHub-Event": "check_run", "X-Hub-Signature-256": "sha1=" + strings.TrimPrefix(sign(testSecret, body), "sha256=")}, body, 401, false},
		{"not hex", "POST", map[string]string{"X-GitHub-Event": "check_run", "X-Hub-Signature-256": "sha256=zz"}, body, 401, false},
		{"missing signature", "POST", map[string]string{"X-GitHub-Event": "check_run"}, body, 401, false},
		{"wrong method", "GET", map[string]string{"X-GitHub-Event": "check_run", "X-Hub-Signature-256": sign(testSecret, body)}, "", 405, false},
	} {
		before := n.github.Load()
		res, _ := do(t, tc.method, url, tc.headers, tc.body)
		if res.StatusCode != tc.code {
			t.Errorf("%s: HTTP %d, want %d", tc.name, res.StatusCode, tc.code)
		}
		if got := n.github.Load() - before; (got == 1) != tc.trigger || got > 1 {
			t.Errorf("%s: %d triggers", tc.name, got)
		}
		if tc.code == 405 && res.Header.Get("Allow") != "POST" {
			t.Errorf("%s: Allow %q", tc.name, res.Header.Get("Allow"))
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no security headers", tc.name)
		}
	}
	if n.octopus.Load() != 0 {
		t.Errorf("GitHub webhooks triggered an Octopus poll")
	}
	// Oversized body: refused before the signature is even checked.
	big := strings.Repeat("x", maxBody+1)
	res, _ := do(t, "POST", url, map[string]string{"X-GitHub-Event": "check_run", "X-Hub-Signature-256": sign(testSecret, big)}, big)
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized: HTTP %d", res.StatusCode)
	}
	// Exactly the limit is fine.
	ok := strings.Repeat("x", maxBody)
	if res, _ := do(t, "POST", url, map[string]string{"X-GitHub-Event": "status", "X-Hub-Signature-256": sign(testSecret, ok)}, ok); res.StatusCode != 202 {
		t.Errorf("1 MiB body: HTTP %d", res.StatusCode)
	}
}

func TestOctopusWebhook(t *testing.T) {
	srv, n, _ := newTestServer(t)
	url := srv.URL + "/webhooks/octopus"
	body := `{"Timestamp":"2026-11-22T10:00:00Z","EventType":"SubscriptionPayload","Payload":{"Event":{"Category":"DeploymentFailed"}}}`
	for _, tc := range []struct {
		name    string
		method  string
		headers map[string]string
		body    string
		code    int
		trigger bool
	}{
		{"valid", "POST", map[string]string{octopusSecretHeader: testSecret}, body, 202, true},
		{"wrong secret", "POST", map[string]string{octopusSecretHeader: testSecret + "x"}, body, 401, false},
		{"prefix of the secret", "POST", map[string]string{octopusSecretHeader: testSecret[:10]}, body, 401, false},
		{"missing header", "POST", nil, body, 401, false},
		{"secret in another header", "POST", map[string]string{"Authorization": "Bearer " + testSecret}, body, 401, false},
		{"wrong method", "PUT", map[string]string{octopusSecretHeader: testSecret}, body, 405, false},
		{"oversized", "POST", map[string]string{octopusSecretHeader: testSecret}, strings.Repeat("y", maxBody+1), 413, false},
	} {
		before := n.octopus.Load()
		res, _ := do(t, tc.method, url, tc.headers, tc.body)
		if res.StatusCode != tc.code {
			t.Errorf("%s: HTTP %d, want %d", tc.name, res.StatusCode, tc.code)
		}
		if got := n.octopus.Load() - before; (got == 1) != tc.trigger || got > 1 {
			t.Errorf("%s: %d triggers", tc.name, got)
		}
		if tc.code == 405 && res.Header.Get("Allow") != "POST" {
			t.Errorf("%s: Allow %q", tc.name, res.Header.Get("Allow"))
		}
	}
	if n.github.Load() != 0 {
		t.Errorf("Octopus webhooks triggered a GitHub poll")
	}
}

func TestStatusEndpoint(t *testing.T) {
	srv, _, c := newTestServer(t)
	res, m := do(t, "GET", srv.URL+"/status", nil, "")
	if res.StatusCode != 200 || m["state"] != "starting" || res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("before the first poll: %d %v %v", res.StatusCode, m, res.Header)
	}
	now := time.Now()
	c.set(0, target{Name: "Website → Production", Source: "octopus", State: stFailed, Release: "1.5.0", Step: "Run smoke tests", Known: true, Updated: now})
	c.set(1, target{Name: "octo/web@main", Source: "github", State: stSuccess, Release: "0123456", Err: "x", Failures: 1, Known: true, Updated: now})
	c.apply(t.Context())
	res, m = do(t, "GET", srv.URL+"/status", nil, "")
	if res.StatusCode != 200 || m["state"] != "failed" || m["colour"] != "RED" || m["updated_at"] == nil || m["quiet"] != false {
		t.Errorf("status %v", m)
	}
	lamp, _ := m["lamp"].(map[string]any)
	if lamp["on"] != true || lamp["colour"] != "RED" {
		t.Errorf("lamp %v", m["lamp"])
	}
	ts, _ := m["targets"].([]any)
	if len(ts) != 2 {
		t.Fatalf("targets %v", m["targets"])
	}
	t0, t1 := ts[0].(map[string]any), ts[1].(map[string]any)
	if t0["state"] != "failed" || t0["release"] != "1.5.0" || t0["step"] != "Run smoke tests" || t0["name"] != "Website → Production" || t0["source"] != "octopus" {
		t.Errorf("target 0: %v", t0)
	}
	if t1["state"] != "success" || t1["error"] != "x" || t1["failures"] != 1.0 {
		t.Errorf("target 1: %v", t1)
	}
	if res, _ := do(t, "HEAD", srv.URL+"/status", nil, ""); res.StatusCode != 200 {
		t.Errorf("HEAD: %d", res.StatusCode)
	}
	if res, _ := do(t, "POST", srv.URL+"/status", nil, "{}"); res.StatusCode != 405 || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /status: %d %q", res.StatusCode, res.Header.Get("Allow"))
	}
	if res, _ := do(t, "GET", srv.URL+"/", nil, ""); res.StatusCode != 404 {
		t.Errorf("GET /: %d", res.StatusCode)
	}
}
