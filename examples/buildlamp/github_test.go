package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseGHRepo(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ghRepo
	}{
		{"octo/web", ghRepo{"octo", "web", "main"}},
		{" octo-org/web.site_2@release/1.0 ", ghRepo{"octo-org", "web.site_2", "release/1.0"}},
		{"octo/web@0123abc", ghRepo{"octo", "web", "0123abc"}},
	} {
		got, err := parseGHRepo(tc.in, "main")
		if err != nil || got != tc.want {
			t.Errorf("parseGHRepo(%q) = %+v, %v", tc.in, got, err)
		}
	}
	for _, bad := range []string{"octo", "/web", "octo/", "octo/web/x", "-octo/web", "octo/..", "octo/web@", "octo/web@a..b",
		"octo/web@a b", "octo/web@/x", "octo/web@x?y", "octo/we b", strings.Repeat("o", 40) + "/web"} {
		if _, err := parseGHRepo(bad, "main"); err == nil {
			t.Errorf("parseGHRepo(%q) accepted", bad)
		}
	}
	if got := (ghRepo{"octo", "web", "release/1.0%"}).path(); got != "repos/octo/web/commits/release/1.0%25" {
		t.Errorf("path %q", got)
	}
}

func str(s string) *string { return &s }

func TestGitHubState(t *testing.T) {
	cs := func(state string, total int, sts ...commitStatus) *combinedStatus {
		if sts == nil {
			sts = []commitStatus{}
		}
		return &combinedStatus{State: &state, SHA: "abcdef0123", TotalCount: &total, Statuses: &sts}
	}
	done := func(name, conclusion string) checkRun {
		return checkRun{Name: name, Status: "completed", Conclusion: str(conclusion)}
	}
	for _, tc := range []struct {
		name  string
		cs    *combinedStatus
		runs  []checkRun
		total int
		want  state
		step  string
	}{
		{"nothing at all", cs("pending", 0), nil, 0, stIdle, ""},
		{"status success", cs("success", 1, commitStatus{State: "success", Context: "ci"}), nil, 0, stSuccess, ""},
		{"status failure", cs("failure", 2, commitStatus{State: "success", Context: "a"}, commitStatus{State: "failure", Context: "ci/jenkins"}), nil, 0, stFailed, "ci/jenkins"},
		{"status error", cs("failure", 1, commitStatus{State: "error", Context: "ci"}), nil, 0, stFailed, "ci"},
		{"status pending", cs("pending", 1, commitStatus{State: "pending", Context: "ci/build"}), nil, 0, stExecuting, "ci/build"},
		{"status pending tests", cs("pending", 1, commitStatus{State: "pending", Context: "ci/unit-tests"}), nil, 0, stTesting, "ci/unit-tests"},
		{"status unknown", cs("success", 1, commitStatus{State: "SUCCESS", Context: "ci"}), nil, 0, stUnknown, "ci"},
		{"statuses truncated: the combined state counts", cs("failure", 150, commitStatus{State: "success", Context: "a"}), nil, 0, stFailed, "150 commit statuses"},
		{"runs success neutral skipped", cs("pending", 0), []checkRun{done("a", "success"), done("b", "neutral"), done("c", "skipped")}, 3, stSuccess, ""},
		{"run failure", cs("pending", 0), []checkRun{done("lint", "success"), done("build", "failure")}, 2, stFailed, "build"},
		{"run startup failure", cs("pending", 0), []checkRun{done("build", "startup_failure")}, 1, stFailed, "build"},
		{"run timed out", cs("pending", 0), []checkRun{done("build", "timed_out")}, 1, stTimedOut, "build"},
		{"run stale", cs("pending", 0), []checkRun{done("build", "stale")}, 1, stTimedOut, "build"},
		{"run cancelled", cs("pending", 0), []checkRun{done("build", "cancelled"), done("x", "success")}, 2, stCanceled, "build"},
		{"run action required", cs("pending", 0), []checkRun{done("deploy", "action_required")}, 1, stIntervention, "deploy"},
		{"run waiting for approval", cs("pending", 0), []checkRun{{Name: "deploy", Status: "waiting"}}, 1, stIntervention, "deploy"},
		{"run in progress", cs("pending", 0), []checkRun{{Name: "build", Status: "in_progress"}}, 1, stExecuting, "build"},
		{"run testing", cs("pending", 0), []checkRun{{Name: "build", Status: "completed", Conclusion: str("success")}, {Name: "Run Tests", Status: "in_progress"}}, 2, stTesting, "Run Tests"},
		{"run queued", cs("pending", 0), []checkRun{{Name: "build", Status: "queued"}}, 1, stQueued, "build"},
		{"run requested", cs("pending", 0), []checkRun{{Name: "build", Status: "requested"}}, 1, stQueued, "build"},
		{"run pending", cs("pending", 0), []checkRun{{Name: "build", Status: "pending"}}, 1, stQueued, "build"},
		{"run completed, null conclusion", cs("pending", 0), []checkRun{{Name: "build", Status: "completed"}}, 1, stUnknown, "build"},
		{"run unknown conclusion", cs("pending", 0), []checkRun{done("build", "weird")}, 1, stUnknown, "build"},
		{"run unknown status", cs("pending", 0), []checkRun{{Name: "build", Status: "paused"}}, 1, stUnknown, "build"},
		{"runs truncated", cs("pending", 0), []checkRun{done("a", "success")}, 900, stUnknown, "check runs"},
		{"failed status beats running check", cs("failure", 1, commitStatus{State: "failure", Context: "jenkins"}), []checkRun{{Name: "build", Status: "in_progress"}}, 1, stFailed, "jenkins"},
		{"running check beats success status", cs("success", 1, commitStatus{State: "success", Context: "jenkins"}), []checkRun{{Name: "build", Status: "in_progress"}}, 1, stExecuting, "build"},
	} {
		got := githubState(tc.cs, tc.runs, tc.total)
		if got.State != tc.want || got.Step != tc.step {
			t.Errorf("%s: %s %q, want %s %q", tc.name, got.State, got.Step, tc.want, tc.step)
		}
		if (got.State == stUnknown) != (got.Note != "") {
			t.Errorf("%s: state %s with note %q", tc.name, got.State, got.Note)
		}
	}
}

func TestParseGitHubBodies(t *testing.T) {
	for _, bad := range []string{``, `null`, `{}`, `[]`, `{"state":"success","total_count":0}`, `{"state":"success","statuses":[]}`,
		`{"state":1,"total_count":0,"statuses":[]}`, `{"state":"success","total_count":-1,"statuses":[]}`, `{"state":"success","total_count":0,"statuses":[]`} {
		if _, err := parseCombinedStatus([]byte(bad)); !errors.Is(err, errGHMalformed) {
			t.Errorf("parseCombinedStatus(%q) = %v", bad, err)
		}
	}
	for _, bad := range []string{``, `null`, `{}`, `{"total_count":1}`, `{"check_runs":[]}`, `{"total_count":1,"check_runs":{}}`, `{"total_count":-2,"check_runs":[]}`} {
		if _, err := parseCheckRuns([]byte(bad)); !errors.Is(err, errGHMalformed) {
			t.Errorf("parseCheckRuns(%q) = %v", bad, err)
		}
	}
}

func newTestGHClient(t *testing.T, url, token string) *ghClient {
	api, err := parseGitHubAPI(url)
	if err != nil {
		t.Fatal(err)
	}
	return newGHClient(api, token, nil, 2*time.Second, time.Now)
}

func TestGitHubClient(t *testing.T) {
	const token = "ghp_TESTTOKEN0123456789"
	g := newFakeGitHub(t, token)
	c := newTestGHClient(t, g.srv.URL, token)
	repo := ghRepo{"octo", "web", "main"}
	ctx := context.Background()

	res, err := c.status(ctx, repo)
	if err != nil || res.State != stIdle {
		t.Fatalf("empty repo: %+v %v", res, err)
	}
	// 250 check runs over 3 pages, one failed on the last page.
	g.set(func(g *fakeGitHub) {
		g.statuses = []map[string]any{ghStatus("success", "ci/jenkins")}
		for i := range 250 {
			g.runs = append(g.runs, ghRun(fmt.Sprintf("job %d", i), "completed", "success"))
		}
		g.runs[249] = ghRun("job 249", "completed", "failure")
		g.requests = 0
	})
	res, err = c.status(ctx, repo)
	if err != nil || res.State != stFailed || res.Step != "job 249" || res.SHA == "" {
		t.Fatalf("paged: %+v %v", res, err)
	}
	g.set(func(g *fakeGitHub) {
		if g.requests != 4 {
			t.Errorf("%d requests for a status and 3 pages", g.requests)
		}
	})
	// Unchanged: answered from the ETag cache.
	res, err = c.status(ctx, repo)
	g.set(func(g *fakeGitHub) {
		if err != nil || res.State != stFailed || g.etagHits != 4 {
			t.Errorf("cached: %+v %v, %d etag hits", res, err, g.etagHits)
		}
	})
	// More check runs than are read: Unknown, never success.
	g.set(func(g *fakeGitHub) {
		g.runs = nil
		for i := range ghPerPage*ghMaxPages + 1 {
			g.runs = append(g.runs, ghRun(fmt.Sprintf("job %d", i), "completed", "success"))
		}
	})
	if res, err = c.status(ctx, repo); err != nil || res.State != stUnknown || !strings.Contains(res.Note, "read 500 of 501") {
		t.Errorf("too many runs: %+v %v", res, err)
	}

	// Errors, each with the token kept out.
	for _, tc := range []struct {
		code    int
		headers map[string]string
		check   func(error) bool
		want    string
	}{
		{401, nil, func(err error) bool { return errors.Is(err, errGHUnauthorized) }, "check -github-token"},
		{403, nil, func(err error) bool { return errors.Is(err, errGHForbidden) }, "lacks permission"},
		{404, nil, func(err error) bool { return errors.Is(err, errGHNotFound) }, "no such repository"},
		{500, nil, func(err error) bool { return !permanentGH(err) }, "HTTP 500"},
		{403, map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": strconv.FormatInt(time.Now().Add(20*time.Minute).Unix(), 10)},
			func(err error) bool {
				var rl *ghRateLimitError
				return errors.As(err, &rl) && time.Until(rl.Until) > 19*time.Minute && time.Until(rl.Until) <= 20*time.Minute
			}, "rate limited until"},
		{429, map[string]string{"Retry-After": "30"}, func(err error) bool {
			var rl *ghRateLimitError
			return errors.As(err, &rl) && time.Until(rl.Until) > 25*time.Second && time.Until(rl.Until) <= 30*time.Second
		}, "rate limited until"},
		{403, map[string]string{"Retry-After": "99999"}, func(err error) bool {
			var rl *ghRateLimitError
			return errors.As(err, &rl) && time.Until(rl.Until) <= ghMaxWait
		}, "rate limited until"},
	} {
		g.set(func(g *fakeGitHub) { g.failCode, g.failHeaders = tc.code, tc.headers })
		_, err := c.status(ctx, repo)
		if err == nil || !tc.check(err) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), token) {
			t.Errorf("HTTP %d %v: %v", tc.code, tc.headers, err)
		}
	}
	g.set(func(g *fakeGitHub) { g.failCode = 0 })

	// Malformed bodies.
	for _, body := range []string{`{"state":`, `{}`, `<html>`} {
		g.set(func(g *fakeGitHub) { g.rawStatus = body })
		if _, err := c.status(ctx, repo); !errors.Is(err, errGHMalformed) {
			t.Errorf("status body %q: %v", body, err)
		}
	}
	g.set(func(g *fakeGitHub) { g.rawStatus, g.rawRuns = "", `{"total_count": 1}` })
	if _, err := c.status(ctx, repo); !errors.Is(err, errGHMalformed) {
		t.Errorf("runs without check_runs: %v", err)
	}
	g.set(func(g *fakeGitHub) { g.rawRuns = "" })

	// A wrong token: 401, and the token is not in the error even when the
	// server echoes it.
	c2 := newTestGHClient(t, g.srv.URL, "wrong-token-value-123")
	if _, err := c2.status(ctx, repo); !errors.Is(err, errGHUnauthorized) || strings.Contains(err.Error(), "wrong-token-value-123") {
		t.Errorf("wrong token: %v", err)
	}
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprintf(w, `{"message":"you sent %s"}`, r.Header.Get("Authorization"))
	}))
	defer echo.Close()
	if _, err := newTestGHClient(t, echo.URL, token).status(ctx, repo); err == nil || strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "[REDACTED]") {
		t.Errorf("echoed token: %v", err)
	}
	if s := fmt.Sprintf("%v %+v %#v", c, c, c.token); strings.Contains(s, token) {
		t.Errorf("printing the client shows the token: %s", s)
	}

	// Timeouts.
	g.set(func(g *fakeGitHub) { g.hang = true })
	c3 := newGHClient(c.api, token, nil, 50*time.Millisecond, time.Now)
	if _, err := c3.status(ctx, repo); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no response within 50ms") {
		t.Errorf("hang: %v", err)
	}
	g.set(func(g *fakeGitHub) { g.hang = false })

	// Redirects to another host are refused.
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://example.invalid/x", http.StatusFound)
	}))
	defer redirect.Close()
	if _, err := newTestGHClient(t, redirect.URL, token).status(ctx, repo); err == nil || !strings.Contains(err.Error(), "refusing redirect") {
		t.Errorf("redirect: %v", err)
	}
}

// TestGitHubPoller checks failures: one or two keep the last state, three
// are an error; a rate limit makes no requests until it resets.
func TestGitHubPoller(t *testing.T) {
	g := newFakeGitHub(t, "")
	g.set(func(g *fakeGitHub) { g.runs = []map[string]any{ghRun("build", "completed", "success")} })
	c := newTestGHClient(t, g.srv.URL, "")
	var mu sync.Mutex
	var got []target
	p := newGHPoller(c, []ghRepo{{"octo", "web", "main"}}, time.Hour, time.Now, slog.New(slog.DiscardHandler), func(i int, t target) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, t)
	})
	last := func() target {
		mu.Lock()
		defer mu.Unlock()
		return got[len(got)-1]
	}
	ctx := context.Background()
	p.pollOnce(ctx)
	if tg := last(); tg.State != stSuccess || !tg.Known || tg.Release != "0123456" || tg.Name != "octo/web@main" || tg.Source != "github" {
		t.Fatalf("first poll: %+v", tg)
	}
	g.set(func(g *fakeGitHub) { g.rawRuns = `{"total_count":` })
	for i := 1; i <= 3; i++ {
		p.pollOnce(ctx)
		tg := last()
		want := stSuccess
		if i == 3 {
			want = stError
		}
		if tg.State != want || tg.Failures != i || !strings.Contains(tg.Err, "malformed") {
			t.Errorf("failure %d: %+v", i, tg)
		}
	}
	g.set(func(g *fakeGitHub) { g.rawRuns = "" })
	p.pollOnce(ctx)
	if tg := last(); tg.State != stSuccess || tg.Failures != 0 || tg.Err != "" {
		t.Errorf("recovered: %+v", tg)
	}
	// Rate limited: later polls make no request until the reset.
	g.set(func(g *fakeGitHub) {
		g.failCode, g.failHeaders = 403, map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)}
	})
	p.pollOnce(ctx)
	g.set(func(g *fakeGitHub) { g.requests = 0 })
	p.pollOnce(ctx)
	p.pollOnce(ctx)
	g.set(func(g *fakeGitHub) {
		if g.requests != 0 {
			t.Errorf("%d requests while rate limited", g.requests)
		}
	})
	if tg := last(); tg.State != stError || !strings.Contains(tg.Err, "rate limited until") {
		t.Errorf("rate limited: %+v", tg)
	}
}
