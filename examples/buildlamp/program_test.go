package main

import (
	"strings"
	"testing"
	"time"

	"github.com/pikit/pikit/octopus/octopustest"
)

// TestOctopusEveryState drives a deployment through every state on the
// fake Octopus server and checks the colour the simulated lamp decoded.
func TestOctopusEveryState(t *testing.T) {
	s := newOctopus(t)
	apply(t, s, "Website", "Production", octopustest.Phase{Release: "1.0.0", State: octopustest.StateSuccess})
	p := startProg(t, octoArgs(s, "-project", "Website", "-environment", "Production", "-status-addr", "127.0.0.1:0"), nil, hooks{})
	p.secrets = []string{octopustest.DefaultAPIKey}
	p.waitColour("GREEN")

	for _, step := range []struct {
		phase  octopustest.Phase
		colour string
		state  string
	}{
		{octopustest.Phase{Release: "1.1.0"}, "WHITE", "queued"},
		{octopustest.Phase{State: octopustest.StateExecuting, Step: "Deploy web", Progress: 20}, "BLUE", "executing"},
		{octopustest.Phase{State: octopustest.StateExecuting, Step: "Run smoke tests", Progress: 50}, "DARK_BLUE", "testing"},
		{octopustest.Phase{State: octopustest.StateExecuting, Step: "Approve release", Interruption: octopustest.ManualIntervention}, "PINK", "intervention"},
		{octopustest.Phase{State: octopustest.StateExecuting, Step: "Notify team", Progress: 90}, "BLUE", "executing"},
		{octopustest.Phase{State: octopustest.StateSuccess, Warnings: true}, "PEA_GREEN", "warnings"},
		{octopustest.Phase{Release: "1.2.0", State: octopustest.StateExecuting, Step: "Run smoke tests", Warnings: true, Interruption: octopustest.GuidedFailure}, "RED", "failed"},
		{octopustest.Phase{State: octopustest.StateFailed}, "RED", "failed"},
		{octopustest.Phase{Release: "1.2.1", State: octopustest.StateTimedOut}, "ORANGE", "timedout"},
		{octopustest.Phase{Release: "1.3.0", State: octopustest.StateExecuting, Step: "Deploy web"}, "BLUE", "executing"},
		{octopustest.Phase{State: octopustest.StateCancelling}, "YELLOW", "canceled"},
		{octopustest.Phase{State: octopustest.StateCanceled}, "YELLOW", "canceled"},
		{octopustest.Phase{Release: "1.4.0", State: "Paused"}, "PURPLE", "unknown"},
		{octopustest.Phase{Release: "1.4.1", State: octopustest.StateSuccess}, "GREEN", "success"},
	} {
		apply(t, s, "Website", "Production", step.phase)
		p.waitColour(step.colour)
		waitFor(t, wait, "/status state "+step.state, func() bool {
			st := p.status()
			return st.State == step.state && st.Colour == step.colour && st.Lamp.Colour == step.colour
		})
	}
	st := p.status()
	if len(st.Targets) != 1 || st.Targets[0].Name != "Website → Production" || st.Targets[0].Release != "1.4.1" || st.Targets[0].Source != "octopus" {
		t.Errorf("targets %+v", st.Targets)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.stderr)
	}
	// Stopping switches the lamp off.
	if p.colour() != colourOff {
		t.Errorf("lamp %s after stopping", p.colour())
	}
	out := p.stdout.String()
	for _, want := range []string{
		"Success (Website → Production 1.0.0) → GREEN",
		"Testing 'Step 2: Run smoke tests' (Website → Production 1.1.0) → DARK_BLUE",
		"Intervention 'Step 3: Approve release' (Website → Production 1.1.0) → PINK",
		"Unknown (Website → Production 1.4.0: octopus: unrecognised task state \"Paused\") → PURPLE",
		"stopped → off",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
}

// TestOctopusAggregation watches every project in every environment: the
// worst state wins, and a project never deployed is Idle.
func TestOctopusAggregation(t *testing.T) {
	s := newOctopus(t)
	p := startProg(t, octoArgs(s, "-project", "Website", "-project", "Billing API", "-environment", "Staging",
		"-environment", "Production", "-status-addr", "127.0.0.1:0"), nil, hooks{})
	p.waitColour("CYAN") // nothing deployed anywhere
	if st := p.status(); len(st.Targets) != 4 || st.State != "idle" {
		t.Fatalf("status %+v", st)
	}
	apply(t, s, "Website", "Staging", octopustest.Phase{Release: "1.0", State: octopustest.StateSuccess})
	p.waitColour("GREEN")
	apply(t, s, "Billing API", "Production", octopustest.Phase{Release: "2.0", State: octopustest.StateFailed})
	p.waitColour("RED")
	apply(t, s, "Website", "Production", octopustest.Phase{Release: "1.0", State: octopustest.StateExecuting, Step: "Deploy web"})
	waitFor(t, wait, "the deployment to show as executing", func() bool {
		for _, tg := range p.status().Targets {
			if tg.Name == "Website → Production" && tg.State == "executing" {
				return true
			}
		}
		return false
	})
	if c := p.colour(); c != "RED" {
		t.Errorf("executing + failed shows %s", c)
	}
	apply(t, s, "Billing API", "Production", octopustest.Phase{Release: "2.1", State: octopustest.StateSuccess})
	p.waitColour("BLUE")
	apply(t, s, "Website", "Production", octopustest.Phase{State: octopustest.StateSuccess})
	p.waitColour("GREEN")
	apply(t, s, "Billing API", "Staging", octopustest.Phase{Release: "2.1", State: octopustest.StateCanceled})
	p.waitColour("YELLOW")
}

// TestOctopusErrorsKeepColourThenPurple checks that malformed responses
// and timeouts keep the last colour for up to 2 failed polls, then show
// PURPLE, and that the lamp recovers.
func TestOctopusErrorsKeepColourThenPurple(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault octopustest.Fault
	}{
		{"malformed JSON", octopustest.Fault{Endpoint: octopustest.EndpointDashboard, Body: `{"Items": [{"State": `}},
		{"not a dashboard", octopustest.Fault{Endpoint: octopustest.EndpointDashboard, Body: `{}`}},
		{"timeout", octopustest.Fault{Endpoint: octopustest.EndpointDashboard, Hang: true}},
		{"HTTP 503", octopustest.Fault{Endpoint: octopustest.EndpointDashboard, Status: 503}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newOctopus(t)
			apply(t, s, "Website", "Production", octopustest.Phase{Release: "1.0", State: octopustest.StateSuccess})
			p := startProg(t, octoArgs(s, "-project", "Website", "-environment", "Production", "-status-addr", "127.0.0.1:0", "-poll", "200ms"),
				nil, hooks{requestTimeout: 150 * time.Millisecond})
			p.secrets = []string{octopustest.DefaultAPIKey}
			p.waitColour("GREEN")
			s.Fail(tc.fault)
			// While fewer than 3 polls failed, the lamp keeps GREEN. The lamp
			// is read before the status, so a status with fewer failures
			// proves what the lamp showed then.
			sawStale := false
			waitFor(t, wait, "PURPLE after 3 failed polls", func() bool {
				lamp := p.colour()
				st := p.status()
				f := st.Targets[0].Failures
				if f >= 1 && f < failThreshold {
					sawStale = true
					if lamp != "GREEN" || st.Colour != "GREEN" || st.State != "success" || st.Targets[0].Error == "" {
						t.Fatalf("after %d failed polls: lamp %s, status %+v", f, lamp, st)
					}
				}
				return lamp == "PURPLE" && st.State == "error" && f >= failThreshold
			})
			if !sawStale {
				t.Error("never saw a status with 1 or 2 failed polls")
			}
			s.ClearFaults()
			p.waitColour("GREEN")
		})
	}
}

// TestOctopusWebhookRepolls: with an hour between polls, a webhook makes
// the lamp change at once.
func TestOctopusWebhookRepolls(t *testing.T) {
	s := newOctopus(t)
	apply(t, s, "Website", "Production", octopustest.Phase{Release: "1.0", State: octopustest.StateSuccess})
	p := startProg(t, octoArgs(s, "-project", "Website", "-environment", "Production", "-poll", "1h",
		"-webhook-addr", "127.0.0.1:0", "-webhook-secret", testSecret), nil, hooks{})
	p.secrets = []string{octopustest.DefaultAPIKey, testSecret}
	p.waitColour("GREEN")
	hooksURL := p.line("webhooks on ")
	octoURL, _, _ := strings.Cut(hooksURL, " and ")
	apply(t, s, "Website", "Production", octopustest.Phase{Release: "1.1", State: octopustest.StateFailed})
	// A wrong secret does nothing.
	if res, _ := do(t, "POST", octoURL, map[string]string{octopusSecretHeader: "wrong"}, "{}"); res.StatusCode != 401 {
		t.Fatalf("wrong secret: HTTP %d", res.StatusCode)
	}
	before := s.Requests(octopustest.EndpointDashboard)
	if res, _ := do(t, "POST", octoURL, map[string]string{octopusSecretHeader: testSecret}, `{"EventType":"SubscriptionPayload"}`); res.StatusCode != 202 {
		t.Fatalf("webhook: HTTP %d", res.StatusCode)
	}
	p.waitColour("RED")
	if n := s.Requests(octopustest.EndpointDashboard) - before; n < 1 {
		t.Errorf("%d dashboard requests after the webhook", n)
	}
}

// TestGitHubProgram drives the GitHub source through its states.
func TestGitHubProgram(t *testing.T) {
	const token = "ghp_PROGRAMTOKEN0123456789"
	g := newFakeGitHub(t, token)
	p := startProg(t, []string{"-github-repo", "octo/web", "-github-api", g.srv.URL, "-poll", "100ms", "-status-addr", "127.0.0.1:0",
		"-webhook-addr", "127.0.0.1:0", "-webhook-secret", testSecret}, map[string]string{"GITHUB_TOKEN": token}, hooks{})
	p.secrets = []string{token, testSecret}
	p.waitColour("CYAN") // nothing reported yet
	sha := "0123456789abcdef0123456789abcdef01234567"
	for _, step := range []struct {
		statuses []map[string]any
		runs     []map[string]any
		colour   string
	}{
		{[]map[string]any{ghStatus("pending", "ci/jenkins")}, nil, "BLUE"},
		{[]map[string]any{ghStatus("success", "ci/jenkins")}, []map[string]any{ghRun("unit tests", "in_progress", nil)}, "DARK_BLUE"},
		{[]map[string]any{ghStatus("success", "ci/jenkins")}, []map[string]any{ghRun("build", "queued", nil)}, "WHITE"},
		{[]map[string]any{ghStatus("success", "ci/jenkins")}, []map[string]any{ghRun("build", "completed", "success"), ghRun("lint", "completed", "neutral"), ghRun("docs", "completed", "skipped")}, "GREEN"},
		{[]map[string]any{ghStatus("failure", "ci/jenkins")}, []map[string]any{ghRun("build", "completed", "success")}, "RED"},
		{nil, []map[string]any{ghRun("build", "completed", "timed_out")}, "ORANGE"},
		{nil, []map[string]any{ghRun("build", "completed", "cancelled")}, "YELLOW"},
		{nil, []map[string]any{ghRun("deploy", "waiting", nil)}, "PINK"},
		{nil, []map[string]any{ghRun("build", "completed", "something_new")}, "PURPLE"},
		{[]map[string]any{ghStatus("error", "ci/travis")}, nil, "RED"},
		{nil, []map[string]any{ghRun("build", "completed", "success")}, "GREEN"},
	} {
		g.set(func(g *fakeGitHub) { g.statuses, g.runs = step.statuses, step.runs })
		p.waitColour(step.colour)
	}
	if st := p.status(); st.Targets[0].Release != sha[:7] || st.Targets[0].Name != "octo/web@main" {
		t.Errorf("target %+v", st.Targets[0])
	}
	// Malformed JSON keeps GREEN, then PURPLE.
	g.set(func(g *fakeGitHub) { g.rawRuns = `{"total_count": 1, "check_runs": [` })
	waitFor(t, wait, "PURPLE", func() bool {
		lamp := p.colour()
		st := p.status()
		if f := st.Targets[0].Failures; f >= 1 && f < failThreshold && lamp != "GREEN" {
			t.Fatalf("after %d failures the lamp shows %s", f, lamp)
		}
		return lamp == "PURPLE"
	})
	g.set(func(g *fakeGitHub) { g.rawRuns = "" })
	p.waitColour("GREEN")
	g.set(func(g *fakeGitHub) {
		if g.badAuth != 0 {
			t.Errorf("%d requests without the token", g.badAuth)
		}
	})
	if code := p.stop(); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// TestGitHubWebhookRepolls: a signed check_run event re-polls GitHub at
// once; an unsigned one does nothing.
func TestGitHubWebhookRepolls(t *testing.T) {
	g := newFakeGitHub(t, "")
	g.set(func(g *fakeGitHub) { g.runs = []map[string]any{ghRun("build", "completed", "success")} })
	p := startProg(t, []string{"-github-repo", "octo/web", "-github-api", g.srv.URL, "-poll", "1h",
		"-webhook-addr", "127.0.0.1:0", "-status-addr", "127.0.0.1:0", "-webhook-secret", testSecret}, nil, hooks{})
	p.waitColour("GREEN")
	_, ghURL, _ := strings.Cut(p.line("webhooks on "), " and ")
	if !strings.HasPrefix(ghURL, "http://") {
		// Both servers share the host: the second URL is printed whole.
		t.Fatalf("webhook URL %q", ghURL)
	}
	g.set(func(g *fakeGitHub) { g.runs = []map[string]any{ghRun("build", "completed", "failure")} })
	body := `{"action":"completed"}`
	if res, _ := do(t, "POST", ghURL, map[string]string{"X-GitHub-Event": "check_run"}, body); res.StatusCode != 401 {
		t.Fatalf("unsigned: HTTP %d", res.StatusCode)
	}
	if res, _ := do(t, "POST", ghURL, map[string]string{"X-GitHub-Event": "check_run", "X-Hub-Signature-256": sign(testSecret, body)}, body); res.StatusCode != 202 {
		t.Fatalf("signed: HTTP %d", res.StatusCode)
	}
	p.waitColour("RED")
}

// TestOctopusAndGitHub watches both sources together.
func TestOctopusAndGitHub(t *testing.T) {
	s := newOctopus(t)
	apply(t, s, "Website", "Production", octopustest.Phase{Release: "1.0", State: octopustest.StateSuccess})
	g := newFakeGitHub(t, "")
	g.set(func(g *fakeGitHub) { g.runs = []map[string]any{ghRun("build", "in_progress", nil)} })
	p := startProg(t, octoArgs(s, "-project", "Website", "-environment", "Production", "-github-repo", "octo/web", "-github-api", g.srv.URL,
		"-status-addr", "127.0.0.1:0"), nil, hooks{})
	p.waitColour("BLUE")
	if st := p.status(); len(st.Targets) != 2 || st.Targets[1].Source != "github" {
		t.Errorf("targets %+v", st.Targets)
	}
	apply(t, s, "Website", "Production", octopustest.Phase{Release: "1.1", State: octopustest.StateFailed})
	p.waitColour("RED")
}

// TestDemo runs the demo at a high speed to its end.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo timeline")
	}
	p := startProg(t, []string{"-demo", "-poll", "100ms"}, nil, hooks{demoSpeed: 30})
	if code := p.exit(); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, p.stderr)
	}
	out := p.stdout.String()
	// At 30 times real time a slow machine (-race) may skip a phase of a
	// few seconds; the start, the long phases and the end are always seen.
	for _, want := range []string{"Success (Website → Production 1.3.2) → GREEN", "→ RED", "Intervention 'Step 3: Approve release'",
		"TimedOut (Website → Production 1.6.1) → ORANGE", "demo: the timeline is over", "stopped → off"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, " → "); n < 10 {
		t.Errorf("only %d lamp changes:\n%s", n, out)
	}
	// The clock starts at noon once the program is ready.
	if _, rest, _ := strings.Cut(out, "Production\n"); !strings.HasPrefix(rest, "12:00:0") {
		t.Errorf("demo clock does not start at noon:\n%s", out)
	}
}
