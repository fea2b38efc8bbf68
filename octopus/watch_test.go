package octopus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pikit/pikit/octopus/octopustest"
)

// waitFor reads updates until one satisfies ok, failing after a generous
// deadline: the tests never assert how long anything takes.
func waitFor(t *testing.T, ch <-chan Update, what string, ok func(Update) bool) Update {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case u, open := <-ch:
			if !open {
				t.Fatalf("channel closed while waiting for %s", what)
			}
			if ok(u) {
				return u
			}
		case <-deadline:
			t.Fatalf("no update with %s", what)
		}
	}
}

// startRun runs w until the test ends and returns Run's result channel.
func startRun(t *testing.T, w *Watcher) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("Run did not return after its context was canceled")
		}
	})
	return done
}

type fixture struct {
	srv *octopustest.Server
	c   *Client
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := octopustest.NewServer(octopustest.Options{})
	t.Cleanup(srv.Close)
	for _, p := range []string{"Website", "Billing API", "Search"} {
		srv.AddProject("", p)
	}
	for _, e := range []string{"Staging", "Production"} {
		srv.AddEnvironment("", e)
	}
	c, err := NewClient(srv.URL, octopustest.DefaultAPIKey, ClientOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{srv, c}
}

func (f *fixture) apply(t *testing.T, project, env string, p octopustest.Phase) {
	t.Helper()
	if err := f.srv.Apply(project, env, p); err != nil {
		t.Fatal(err)
	}
}

func TestNewWatcherValidates(t *testing.T) {
	c, _ := NewClient("http://127.0.0.1:1", testKey, ClientOptions{})
	ok := []Target{{"Website", "Production"}}
	for _, tt := range []struct {
		c       *Client
		targets []Target
		opts    WatchOptions
		want    string
	}{
		{nil, ok, WatchOptions{}, "nil client"},
		{c, nil, WatchOptions{}, "no targets"},
		{c, []Target{{"Website", " "}}, WatchOptions{}, "target 1 needs"},
		{c, ok, WatchOptions{Interval: -1}, "negative Interval"},
		{c, ok, WatchOptions{MaxBackoff: -1}, "negative MaxBackoff"},
		{c, ok, WatchOptions{Interval: time.Minute, MaxBackoff: time.Second}, "less than Interval"},
	} {
		if _, err := NewWatcher(tt.c, tt.targets, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("error %v, want %q", err, tt.want)
		}
	}
	w, err := NewWatcher(c, ok, WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w.opts.Interval != DefaultInterval || w.opts.MaxBackoff != DefaultMaxBackoff {
		t.Errorf("defaults %+v", w.opts)
	}
	snap := w.Snapshot()
	if len(snap) != 1 || snap[0].Status.State != Unknown || snap[0].Status.Err == nil {
		t.Errorf("snapshot before polling: %+v", snap)
	}
}

// One dashboard request per poll however many targets; activity logs only
// for executing deployments, interruptions only where one is pending, and
// the names resolved once.
func TestWatchRequestCost(t *testing.T) {
	f := newFixture(t)
	f.apply(t, "Website", "Production", octopustest.Phase{Release: "3.1.0", State: "Executing", Step: "Run smoke tests",
		Progress: 60, Warnings: true, Interruption: octopustest.GuidedFailure})
	f.apply(t, "Website", "Staging", octopustest.Phase{Release: "3.2.0", State: "Executing", Step: "Deploy web", Progress: 20})
	f.apply(t, "Billing API", "Production", octopustest.Phase{Release: "5.0.0", State: "Success"})
	f.apply(t, "Billing API", "Staging", octopustest.Phase{Release: "5.1.0"})

	targets := []Target{
		{"Website", "Production"},
		{"website", "staging"},
		{"Billing API", "Production"},
		{"Projects-2", "Environments-1"}, // Billing API, Staging, by ID
		{"Search", "Production"},
		{"Website", "Production"}, // twice: same task, fetched once
	}
	w, err := NewWatcher(f.c, targets, WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const polls = 3
	for range polls {
		if err := w.Poll(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	counts := map[octopustest.Endpoint]int{
		octopustest.EndpointSpaces:        1,
		octopustest.EndpointProjects:      1,
		octopustest.EndpointEnvironments:  1,
		octopustest.EndpointDashboard:     polls,
		octopustest.EndpointTaskDetails:   2 * polls, // the two executing deployments
		octopustest.EndpointInterruptions: polls,     // the one waiting for guidance
		octopustest.EndpointDeployments:   0,
		octopustest.EndpointTask:          0,
	}
	for e, want := range counts {
		if got := f.srv.Requests(e); got != want {
			t.Errorf("%s: %d requests, want %d", e, got, want)
		}
	}

	want := []string{
		`Executing 3.1.0 "Step 2: Run smoke tests" 60% testing waiting:GuidedFailure warnings`,
		`Executing 3.2.0 "Step 1: Deploy web" on "web01" 20%`,
		"Success 5.0.0",
		"Queued 5.1.0",
		"Idle",
		`Executing 3.1.0 "Step 2: Run smoke tests" 60% testing waiting:GuidedFailure warnings`,
	}
	for i, u := range w.Snapshot() {
		if got := u.Status.String(); got != want[i] {
			t.Errorf("target %d (%s): %s, want %s", i, u.Target, got, want[i])
		}
		if u.Failures != 0 || u.Status.Updated.IsZero() || u.ProjectID == "" || u.EnvironmentName == "" {
			t.Errorf("target %d: %+v", i, u)
		}
	}
	if u := w.Snapshot()[1]; u.ProjectName != "Website" || u.EnvironmentName != "Staging" || u.Target.Project != "website" {
		t.Errorf("resolved names: %+v", u)
	}
	if u := w.Snapshot()[0]; u.Status.InterruptionTitle != "Deploy Website release 3.1.0 to Production requires failure guidance" {
		t.Errorf("interruption title %q", u.Status.InterruptionTitle)
	}
}

// Activity logs are fetched only while the deployment executes.
func TestWatchDetailsOnlyWhileExecuting(t *testing.T) {
	f := newFixture(t)
	if err := f.srv.Play(octopustest.Timeline{
		Project: "Website", Environment: "Production",
		Phases: []octopustest.Phase{
			{Release: "1.0"},
			{State: "Executing", Step: "Deploy web", Progress: 30},
			{State: "Executing", Step: "Run smoke tests", Progress: 70},
			{State: "Success"},
		},
	}); err != nil {
		t.Fatal(err)
	}
	w, _ := NewWatcher(f.c, []Target{{"Website", "Production"}}, WatchOptions{})
	var details []int
	var states []string
	for range 4 {
		if err := w.Poll(context.Background()); err != nil {
			t.Fatal(err)
		}
		details = append(details, f.srv.Requests(octopustest.EndpointTaskDetails))
		st := w.Snapshot()[0].Status
		states = append(states, fmt.Sprintf("%v %s %d %v", st.State, st.Step, st.Progress, st.TestPhase))
		f.srv.Advance()
	}
	if fmt.Sprint(details) != "[0 1 2 2]" {
		t.Errorf("details requests after each poll: %v", details)
	}
	want := "[Queued  0 false Executing Step 1: Deploy web 30 false Executing Step 2: Run smoke tests 70 true Success  0 false]"
	if fmt.Sprint(states) != want {
		t.Errorf("states %v\nwant   %v", states, want)
	}
}

func TestWatchDeliversChangesOnly(t *testing.T) {
	f := newFixture(t)
	f.apply(t, "Website", "Production", octopustest.Phase{Release: "1.0", State: "Success"})
	w, _ := NewWatcher(f.c, []Target{{"Website", "Production"}, {"Search", "Staging"}}, WatchOptions{})
	ctx := context.Background()
	if err := w.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if !w.dirty[0] || !w.dirty[1] {
		t.Fatal("first statuses not queued for delivery")
	}
	w.dirty[0], w.dirty[1] = false, false
	if err := w.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if w.dirty[0] || w.dirty[1] {
		t.Error("a poll without changes queued an update")
	}
	f.apply(t, "Website", "Production", octopustest.Phase{Release: "1.1"})
	if err := w.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if !w.dirty[0] || w.dirty[1] {
		t.Errorf("dirty = %v after one target changed", w.dirty)
	}
}

func TestWatchRunAndTrigger(t *testing.T) {
	f := newFixture(t)
	f.apply(t, "Website", "Production", octopustest.Phase{Release: "1.0", State: "Success"})
	// An hour between polls: only Trigger can make the second one happen.
	w, _ := NewWatcher(f.c, []Target{{"Website", "Production"}}, WatchOptions{Interval: time.Hour})
	startRun(t, w)
	waitFor(t, w.Changes(), "Success 1.0", func(u Update) bool { return u.Status.String() == "Success 1.0" })

	f.apply(t, "Website", "Production", octopustest.Phase{Release: "1.1", State: "Failed"})
	w.Trigger()
	u := waitFor(t, w.Changes(), "Failed 1.1", func(u Update) bool { return u.Status.State == Failed })
	if u.Status.Release != "1.1" || u.Target != (Target{"Website", "Production"}) {
		t.Errorf("update %+v", u)
	}
	if n := f.srv.Requests(octopustest.EndpointDashboard); n != 2 {
		t.Errorf("%d dashboard requests, want 2", n)
	}
	if err := w.Run(context.Background()); err == nil {
		t.Error("second Run accepted")
	}
}

func TestWatchChannelClosesWhenRunReturns(t *testing.T) {
	f := newFixture(t)
	w, _ := NewWatcher(f.c, []Target{{"Website", "Production"}}, WatchOptions{Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	waitFor(t, w.Changes(), "Idle", func(u Update) bool { return u.Status.State == Idle })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v", err)
	}
	for range w.Changes() {
	}
}

// A slow receiver misses intermediate statuses, never the latest.
func TestWatchSlowReceiverGetsLatest(t *testing.T) {
	f := newFixture(t)
	f.apply(t, "Website", "Production", octopustest.Phase{Release: "1.0"})
	w, _ := NewWatcher(f.c, []Target{{"Website", "Production"}}, WatchOptions{Interval: time.Hour})
	startRun(t, w)
	for _, p := range []octopustest.Phase{
		{State: "Executing", Step: "Deploy web", Progress: 10},
		{State: "Executing", Step: "Deploy web", Progress: 40},
		{State: "Executing", Step: "Run smoke tests", Progress: 80},
	} {
		f.apply(t, "Website", "Production", p)
		if err := w.Poll(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	waitFor(t, w.Changes(), "the latest status", func(u Update) bool {
		n++
		return u.Status.Progress == 80
	})
	if n > 2 {
		t.Errorf("%d updates queued for a slow receiver, want at most the one in flight and the latest", n)
	}
}

// On errors the last known state stays, annotated, with Failures counting;
// the caller decides when to show an error.
func TestWatchErrorsKeepLastKnownState(t *testing.T) {
	f := newFixture(t)
	f.apply(t, "Website", "Production", octopustest.Phase{Release: "2.0", State: "Success"})
	w, _ := NewWatcher(f.c, []Target{{"Website", "Production"}},
		WatchOptions{Interval: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	startRun(t, w)
	waitFor(t, w.Changes(), "Success", func(u Update) bool { return u.Status.State == Success && u.Failures == 0 })

	f.srv.Fail(octopustest.Fault{Endpoint: octopustest.EndpointDashboard, Status: http.StatusServiceUnavailable})
	u := waitFor(t, w.Changes(), "three failures", func(u Update) bool { return u.Failures >= 3 })
	var se *ServerError
	if u.Status.State != Success || u.Status.Release != "2.0" || !errors.As(u.Status.Err, &se) || se.StatusCode != 503 {
		t.Errorf("annotated status %+v", u.Status)
	}
	if u.Status.Updated.IsZero() {
		t.Error("Updated lost")
	}

	f.srv.ClearFaults()
	f.apply(t, "Website", "Production", octopustest.Phase{Release: "2.1", State: "Failed"})
	waitFor(t, w.Changes(), "recovery", func(u Update) bool {
		return u.Failures == 0 && u.Status.Err == nil && u.Status.State == Failed
	})
}

// Failing to read the activity log leaves the fresh state and the last
// known step, with the error, and does not count as a failure.
func TestWatchDetailsFailureKeepsStep(t *testing.T) {
	f := newFixture(t)
	f.apply(t, "Website", "Production", octopustest.Phase{Release: "2.0", State: "Executing", Step: "Run smoke tests", Progress: 50})
	w, _ := NewWatcher(f.c, []Target{{"Website", "Production"}}, WatchOptions{})
	ctx := context.Background()
	if err := w.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	f.srv.Fail(octopustest.Fault{Endpoint: octopustest.EndpointTaskDetails, Status: http.StatusForbidden})
	f.apply(t, "Website", "Production", octopustest.Phase{State: "Executing", Step: "Run smoke tests", Progress: 60, Warnings: true})
	if err := w.Poll(ctx); err != nil {
		t.Fatalf("a details failure failed the poll: %v", err)
	}
	u := w.Snapshot()[0]
	if u.Status.State != Executing || !u.Status.Warnings || u.Status.Step != "Step 2: Run smoke tests" || u.Status.Progress != 50 ||
		!errors.Is(u.Status.Err, ErrForbidden) || u.Failures != 0 {
		t.Errorf("got %+v", u)
	}
}

func TestWatchResolutionErrorsAreFatal(t *testing.T) {
	f := newFixture(t)
	w, _ := NewWatcher(f.c, []Target{{"Website", "Production"}, {"Websit", "Production"}}, WatchOptions{Interval: time.Millisecond})
	err := w.Run(context.Background())
	var nf *NotFoundError
	if !errors.As(err, &nf) || nf.Kind != "project" || len(nf.Suggestions) == 0 || nf.Suggestions[0] != "Website" {
		t.Fatalf("Run returned %v", err)
	}
	if !strings.Contains(err.Error(), "Websit → Production") || !strings.Contains(err.Error(), `did you mean "Website"`) {
		t.Errorf("message %q", err)
	}

	w, _ = NewWatcher(f.c, []Target{{"Website", "Prod"}}, WatchOptions{Interval: time.Millisecond})
	if err := w.Run(context.Background()); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"Production"`) {
		t.Errorf("unknown environment: %v", err)
	}

	bad, _ := NewClient(f.srv.URL, "API-WRONG", ClientOptions{})
	w, _ = NewWatcher(bad, []Target{{"Website", "Production"}}, WatchOptions{Interval: time.Millisecond})
	if err := w.Run(context.Background()); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("wrong key: %v", err)
	}
}

// A server that is down at boot is retried, not fatal.
func TestWatchTransientResolutionRetried(t *testing.T) {
	f := newFixture(t)
	f.apply(t, "Website", "Production", octopustest.Phase{Release: "1.0", State: "Success"})
	f.srv.Fail(octopustest.Fault{Endpoint: octopustest.EndpointSpaces, Status: http.StatusBadGateway, Times: 2})
	w, _ := NewWatcher(f.c, []Target{{"Website", "Production"}, {"Search", "Staging"}},
		WatchOptions{Interval: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	startRun(t, w)
	u := waitFor(t, w.Changes(), "a failure", func(u Update) bool { return u.Failures > 0 })
	if u.Status.State != Unknown || u.Status.Err == nil {
		t.Errorf("during the outage: %+v", u)
	}
	waitFor(t, w.Changes(), "Success", func(u Update) bool { return u.Status.State == Success && u.Failures == 0 })
	// Both targets failed on the same request, not one request each.
	if n := f.srv.Requests(octopustest.EndpointSpaces); n != 3 {
		t.Errorf("%d space requests, want 3 (two failures, one success)", n)
	}
}

// A project that vanishes from the dashboard is looked up again by name.
func TestWatchReresolvesMissingProject(t *testing.T) {
	var listings atomic.Int64
	projectID := atomic.Value{}
	projectID.Store("Projects-1")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := projectID.Load().(string)
		switch r.URL.Path {
		case "/api/spaces/all":
			fmt.Fprint(w, `[{"Id": "Spaces-1", "Name": "Default", "IsDefault": true}]`)
		case "/api/Spaces-1/projects/all":
			listings.Add(1)
			if id == "" {
				fmt.Fprint(w, `[{"Id": "Projects-3", "Name": "Shop"}]`)
				return
			}
			fmt.Fprintf(w, `[{"Id": %q, "Name": "Website"}]`, id)
		case "/api/Spaces-1/environments/all":
			fmt.Fprint(w, `[{"Id": "Environments-1", "Name": "Production"}]`)
		case "/api/Spaces-1/dashboard/dynamic":
			fmt.Fprintf(w, `{"Projects": [{"Id": %q, "Name": "Website"}], "Items": [{"ProjectId": %q, "EnvironmentId": "Environments-1", "State": "Success", "ReleaseVersion": %q}]}`,
				id, id, id)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, ClientOptions{})
	w, _ := NewWatcher(c, []Target{{"Website", "Production"}}, WatchOptions{Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	if err := w.Poll(ctx); err != nil || w.Snapshot()[0].Status.State != Success {
		t.Fatalf("first poll: %v %+v", err, w.Snapshot()[0])
	}
	projectID.Store("Projects-2") // deleted and created again under the same name
	if err := w.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if u := w.Snapshot()[0]; u.Status.State != Unknown || !errors.Is(u.Status.Err, ErrNotFound) {
		t.Errorf("vanished project: %+v", u)
	}
	if err := w.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if u := w.Snapshot()[0]; u.ProjectID != "Projects-2" || u.Status.State != Success || u.Status.Release != "Projects-2" {
		t.Errorf("after resolving again: %+v", u)
	}
	if n := listings.Load(); n != 2 {
		t.Errorf("%d project listings, want 2", n)
	}

	// Deleted for good: the name no longer resolves. That is reported, but
	// it is no reason to back off (other targets would suffer).
	projectID.Store("")
	for range 2 {
		w.Poll(ctx)
	}
	u := w.Snapshot()[0]
	var nf *NotFoundError
	if !errors.As(u.Status.Err, &nf) || u.Failures != 1 {
		t.Errorf("deleted project: %+v", u)
	}
	if err := w.Poll(ctx); !errors.As(err, &nf) {
		t.Errorf("Poll returned %v", err)
	}
	if w.streak != 0 {
		t.Errorf("backoff streak %d for a missing project", w.streak)
	}
}

func TestBackoff(t *testing.T) {
	iv, limit := 10*time.Second, 2*time.Minute
	for _, tt := range []struct {
		n    int
		want time.Duration
	}{{1, 10 * time.Second}, {2, 20 * time.Second}, {3, 40 * time.Second}, {4, 80 * time.Second}, {5, 2 * time.Minute}, {60, 2 * time.Minute}} {
		if got := backoff(iv, limit, tt.n, 0); got != tt.want {
			t.Errorf("backoff(%d) = %s, want %s", tt.n, got, tt.want)
		}
		if got := backoff(iv, limit, tt.n, 0.999); got < tt.want*3/4 || got > tt.want {
			t.Errorf("jittered backoff(%d) = %s", tt.n, got)
		}
	}
}
