package octopus

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const testKey = "API-ZZTESTSECRETKEY1234567890"

// fakeAPI serves testdata files by path, checking the API key; handlers in
// extra take precedence.
type fakeAPI struct {
	t     *testing.T
	extra map[string]http.HandlerFunc
	hits  atomic.Int64
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.hits.Add(1)
	if h, ok := f.extra[r.URL.Path]; ok {
		h(w, r)
		return
	}
	if r.Header.Get("X-Octopus-ApiKey") != testKey {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"ErrorMessage": "You must be logged in to perform this action. Please provide a valid API key or log in again.", "Errors": []}`)
		return
	}
	files := map[string]string{
		"/api/spaces/all":                                "spaces-all.json",
		"/api/Spaces-1/projects/all":                     "projects-all.json",
		"/api/Spaces-1/environments/all":                 "environments-all.json",
		"/api/Spaces-1/deployments":                      "deployments-latest.json",
		"/api/Spaces-1/tasks/ServerTasks-11633":          "task-executing.json",
		"/api/Spaces-1/tasks/ServerTasks-11633/details":  "task-details-executing.json",
		"/api/Spaces-1/dashboard/dynamic":                "dashboard-mixed.json",
		"/api/Spaces-1/interruptions":                    "interruptions-guided-failure.json",
		"/api/Spaces-22/projects/all":                    "projects-all.json",
		"/api/Spaces-1/projects/Projects-81":             "",
		"/api/Spaces-1/environments/Environments-2":      "",
		"/api/Spaces-1/tasks/ServerTasks-11610/details":  "task-details-success.json",
		"/api/Spaces-1/tasks/ServerTasks-11625/details":  "task-details-queued.json",
		"/api/Spaces-1/interruptions/Interruptions-7105": "",
	}
	name, ok := files[r.URL.Path]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"ErrorMessage": "The resource you requested was not found."}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/api/Spaces-1/projects/Projects-81":
		fmt.Fprint(w, `{"Id": "Projects-81", "SpaceId": "Spaces-1", "Name": "Website", "Slug": "website"}`)
	case "/api/Spaces-1/environments/Environments-2":
		fmt.Fprint(w, `{"Id": "Environments-2", "SpaceId": "Spaces-1", "Name": "Production", "Slug": "production"}`)
	default:
		w.Write(readTestdata(f.t, name))
	}
}

func newFake(t *testing.T, extra map[string]http.HandlerFunc) (*httptest.Server, *fakeAPI) {
	t.Helper()
	f := &fakeAPI{t: t, extra: extra}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv, f
}

func newTestClient(t *testing.T, url string, opts ClientOptions) *Client {
	t.Helper()
	c, err := NewClient(url, testKey, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewClientValidates(t *testing.T) {
	tests := []struct {
		url, key string
		opts     ClientOptions
		want     string
	}{
		{"", testKey, ClientOptions{}, "empty server URL"},
		{"ftp://octopus.example.com", testKey, ClientOptions{}, "scheme must be http or https"},
		{"octopus.example.com", testKey, ClientOptions{}, "scheme must be http or https"},
		{"https://", testKey, ClientOptions{}, "no host"},
		{"https://octopus.example.com/?apikey=" + testKey, testKey, ClientOptions{}, "must not have a query"},
		{"https://user:" + testKey + "@octopus.example.com", testKey, ClientOptions{}, "must not contain user info"},
		{"https://octopus.example.com/#x", testKey, ClientOptions{}, "fragment"},
		{"https://octopus.example.com/%zz" + testKey, testKey, ClientOptions{}, "invalid server URL"},
		{"https://octopus.example.com", "", ClientOptions{}, "empty API key"},
		{"https://octopus.example.com", "   ", ClientOptions{}, "empty API key"},
		{"https://octopus.example.com", testKey + "\n", ClientOptions{}, "API key contains"},
		{"https://octopus.example.com", testKey + " x", ClientOptions{}, "API key contains"},
		{"https://octopus.example.com", testKey, ClientOptions{Timeout: -time.Second}, "negative Timeout"},
	}
	for _, tt := range tests {
		_, err := NewClient(tt.url, tt.key, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewClient(%q, ...) error = %v, want %q", tt.url, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), testKey) {
			t.Errorf("error shows the API key: %v", err)
		}
		if !strings.HasPrefix(err.Error(), "octopus: ") {
			t.Errorf("error %q lacks the package prefix", err)
		}
	}
	for _, u := range []string{"http://octopus.local:8080", "https://example.com/octopus", "https://example.com/octopus/", " https://octopus.example.com "} {
		if _, err := NewClient(u, testKey, ClientOptions{}); err != nil {
			t.Errorf("NewClient(%q): %v", u, err)
		}
	}
}

func TestBasePathPrefix(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.Path
		fmt.Fprint(w, `[{"Id": "Spaces-1", "Name": "Default", "IsDefault": true}]`)
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL+"/octopus", ClientOptions{})
	if _, err := c.Space(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got != "/octopus/api/spaces/all" {
		t.Errorf("requested %q", got)
	}
}

func TestHeaders(t *testing.T) {
	var h http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h = r.Header.Clone()
		fmt.Fprint(w, `[{"Id": "Spaces-1", "Name": "Default", "IsDefault": true}]`)
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, ClientOptions{UserAgent: "buildlamp/2"})
	if _, err := c.Space(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h.Get("X-Octopus-ApiKey") != testKey || h.Get("User-Agent") != "buildlamp/2" || h.Get("Accept") != "application/json" {
		t.Errorf("headers: %v", h)
	}
}

func TestSpaceResolution(t *testing.T) {
	srv, f := newFake(t, nil)
	ctx := context.Background()
	for _, tt := range []struct{ arg, want string }{
		{"", "Spaces-1"},
		{"Default", "Spaces-1"},
		{"platform team", "Spaces-22"},
		{"Spaces-22", "Spaces-22"},
		{"spaces-22", "Spaces-22"},
		{"platform-team", "Spaces-22"},
	} {
		c := newTestClient(t, srv.URL, ClientOptions{Space: tt.arg})
		sp, err := c.Space(ctx)
		if err != nil || sp.ID != tt.want {
			t.Errorf("space %q: %v, %v; want %s", tt.arg, sp, err, tt.want)
		}
	}

	// The space is resolved once.
	c := newTestClient(t, srv.URL, ClientOptions{})
	before := f.hits.Load()
	for range 3 {
		if _, err := c.Space(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.hits.Load() - before; n != 1 {
		t.Errorf("%d requests for three Space calls", n)
	}

	c = newTestClient(t, srv.URL, ClientOptions{Space: "Platfrom Team"})
	_, err := c.Space(ctx)
	var nf *NotFoundError
	if !errors.As(err, &nf) || !errors.Is(err, ErrNotFound) || nf.Kind != "space" {
		t.Fatalf("unknown space: %v", err)
	}
	if len(nf.Suggestions) == 0 || nf.Suggestions[0] != "Platform Team" {
		t.Errorf("suggestions %q", nf.Suggestions)
	}
}

func TestNoDefaultSpace(t *testing.T) {
	srv, _ := newFake(t, map[string]http.HandlerFunc{
		"/api/spaces/all": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `[{"Id": "Spaces-2", "Name": "Apps", "IsDefault": false}]`)
		},
	})
	_, err := newTestClient(t, srv.URL, ClientOptions{}).Space(context.Background())
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"Apps"`) {
		t.Errorf("no default space: %v", err)
	}
}

func TestProjectAndEnvironmentLookup(t *testing.T) {
	srv, _ := newFake(t, nil)
	c := newTestClient(t, srv.URL, ClientOptions{})
	ctx := context.Background()

	for _, arg := range []string{"Website", "website", "WEBSITE", "Projects-81", "projects-81", "  Website  "} {
		p, err := c.Project(ctx, arg)
		if err != nil || p.ID != "Projects-81" || p.Name != "Website" {
			t.Errorf("Project(%q) = %+v, %v", arg, p, err)
		}
	}
	if p, err := c.Project(ctx, "billing-api"); err != nil || p.ID != "Projects-90" {
		t.Errorf("by slug: %+v, %v", p, err)
	}
	for _, arg := range []string{"Production", "production", "Environments-2"} {
		e, err := c.Environment(ctx, arg)
		if err != nil || e.ID != "Environments-2" {
			t.Errorf("Environment(%q) = %+v, %v", arg, e, err)
		}
	}

	tests := []struct {
		kind, arg string
		want      []string
	}{
		{"project", "Websit", []string{"Website", "Website Admin"}},
		{"project", "billing", []string{"Billing API"}},
		{"project", "Biling API", []string{"Billing API"}},
		{"project", "Inventory", nil},
		{"environment", "Prod", []string{"Production"}},
		{"environment", "Stagign", []string{"Staging"}},
	}
	for _, tt := range tests {
		var err error
		if tt.kind == "project" {
			_, err = c.Project(ctx, tt.arg)
		} else {
			_, err = c.Environment(ctx, tt.arg)
		}
		var nf *NotFoundError
		if !errors.As(err, &nf) || !errors.Is(err, ErrNotFound) {
			t.Errorf("%s %q: error %v, want a NotFoundError", tt.kind, tt.arg, err)
			continue
		}
		if strings.Join(nf.Suggestions, "|") != strings.Join(tt.want, "|") {
			t.Errorf("%s %q: suggestions %q, want %q", tt.kind, tt.arg, nf.Suggestions, tt.want)
		}
		if nf.Space != "Default" || !strings.Contains(err.Error(), tt.arg) {
			t.Errorf("message %q", err)
		}
		if len(tt.want) > 0 && !strings.Contains(err.Error(), "did you mean") {
			t.Errorf("message %q lists no suggestion", err)
		}
	}

	// An ID that does not exist is a NotFoundError too.
	if _, err := c.Project(ctx, "Projects-404"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown project ID: %v", err)
	}
	if _, err := c.Environment(ctx, "Environments-404"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown environment ID: %v", err)
	}
	if _, err := c.Project(ctx, " "); err == nil {
		t.Error("empty project name accepted")
	}
}

func TestLookupAmbiguous(t *testing.T) {
	cands := []candidate{{id: "Projects-1", name: "Web"}, {id: "Projects-2", name: "WEB"}}
	if i, err := lookup("project", "Web", "", cands); err != nil || i != 0 {
		t.Errorf("exact match: %d, %v", i, err)
	}
	_, err := lookup("project", "web", "", cands)
	if !errors.Is(err, errAmbiguous) || !strings.Contains(err.Error(), "Projects-2") {
		t.Errorf("ambiguous: %v", err)
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"Website", "Website Admin", "Billing API", "Web", "Mobile Backend", "Docs"}
	if got := suggest("webiste", names, 3); strings.Join(got, "|") != "Website|Web" {
		t.Errorf("suggest(webiste) = %q", got)
	}
	if got := suggest("zzzzzzzz", names, 3); len(got) != 0 {
		t.Errorf("suggest(zzzzzzzz) = %q", got)
	}
	if got := suggest("e", names, 10); len(got) > 10 {
		t.Errorf("too many: %q", got)
	}
	if d := editDistance("kitten", "sitting", 10); d != 3 {
		t.Errorf("editDistance = %d", d)
	}
	if d := editDistance(strings.Repeat("a", 500), "b", 3); d != 3 {
		t.Errorf("bounded editDistance = %d", d)
	}
}

func TestLatestDeploymentTaskInterruptions(t *testing.T) {
	srv, _ := newFake(t, nil)
	c := newTestClient(t, srv.URL, ClientOptions{})
	ctx := context.Background()

	d, err := c.LatestDeployment(ctx, "Projects-81", "Environments-2")
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "Deployments-412" || d.TaskID != "ServerTasks-11633" || d.TenantID != "" || d.Created.IsZero() || !d.FailureEncountered {
		t.Errorf("deployment %+v", d)
	}

	task, err := c.Task(ctx, d.TaskID)
	if err != nil || task.State != TaskExecuting || !task.HasPendingInterruptions || !task.CompletedTime.IsZero() {
		t.Errorf("task %+v, %v", task, err)
	}
	td, err := c.TaskDetails(ctx, d.TaskID)
	if err != nil || len(td.ActivityLogs) != 1 || td.Progress.ProgressPercentage != 70 {
		t.Errorf("details %+v, %v", td, err)
	}
	list, err := c.Interruptions(ctx, d.TaskID)
	if err != nil || len(list) != 1 || list[0].Type != InterruptionGuidedFailure || !list[0].IsPending {
		t.Errorf("interruptions %+v, %v", list, err)
	}
	for _, bad := range []string{"", "../x", "a/b", "a b", "x?y"} {
		if _, err := c.Task(ctx, bad); err == nil {
			t.Errorf("Task(%q) accepted", bad)
		}
	}
}

func TestLatestDeploymentNone(t *testing.T) {
	srv, _ := newFake(t, map[string]http.HandlerFunc{
		"/api/Spaces-1/deployments": func(w http.ResponseWriter, r *http.Request) {
			if q := r.URL.Query(); q.Get("projects") != "Projects-1" || q.Get("environments") != "Environments-9" || q.Get("take") != "1" {
				t.Errorf("query %v", q)
			}
			fmt.Fprint(w, `{"ItemType": "Deployment", "TotalResults": 0, "Items": []}`)
		},
	})
	c := newTestClient(t, srv.URL, ClientOptions{})
	d, err := c.LatestDeployment(context.Background(), "Projects-1", "Environments-9")
	if d != nil || !errors.Is(err, ErrNoDeployment) {
		t.Errorf("got %v, %v", d, err)
	}
}

func TestDashboardQuery(t *testing.T) {
	var query string
	srv, _ := newFake(t, map[string]http.HandlerFunc{
		"/api/Spaces-1/dashboard/dynamic": func(w http.ResponseWriter, r *http.Request) {
			query = r.URL.RawQuery
			w.Write(readTestdata(t, "dashboard-success.json"))
		},
	})
	c := newTestClient(t, srv.URL, ClientOptions{})
	d, err := c.Dashboard(context.Background(), []string{"Projects-81", "Projects-90"}, []string{"Environments-2"})
	if err != nil {
		t.Fatal(err)
	}
	if query != "environments=Environments-2&projects=Projects-81%2CProjects-90" {
		t.Errorf("query %q", query)
	}
	if len(d.Items) != 1 || d.Items[0].ReleaseVersion != "2.16.0" {
		t.Errorf("dashboard %+v", d)
	}
	if _, err := c.Dashboard(context.Background(), []string{"Projects-1,Projects-2"}, nil); err == nil {
		t.Error("ID with a comma accepted")
	}
}

func TestClientStatus(t *testing.T) {
	srv, _ := newFake(t, nil)
	c := newTestClient(t, srv.URL, ClientOptions{})
	st, err := c.Status(context.Background(), "Projects-81", "Environments-2", StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := Status{
		State: Executing, Release: "2.17.0", Step: "Step 2: Run smoke tests", Activity: "Run script 'smoke.sh'",
		Progress: 70, TestPhase: true, Interruption: true, InterruptionType: InterruptionGuidedFailure,
		InterruptionTitle: "Deploy Website release 2.17.0 to Production requires failure guidance",
		Warnings:          true, TaskID: "ServerTasks-11633", DeploymentID: "Deployments-412",
		QueueTime: st.QueueTime, StartTime: st.StartTime,
	}
	if !st.Equal(want) || st.Updated.IsZero() {
		t.Errorf("got  %+v\nwant %+v", st, want)
	}
	if _, err := c.Status(context.Background(), "", "Environments-2", StatusOptions{}); err == nil {
		t.Error("empty project ID accepted")
	}
}

func TestHTTPErrors(t *testing.T) {
	longBody := strings.Repeat("Database unavailable. ", 1000) + testKey
	srv, _ := newFake(t, map[string]http.HandlerFunc{
		"/api/Spaces-1/tasks/ServerTasks-401": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			// A server echoing the key must not get it into the error.
			fmt.Fprintf(w, `{"ErrorMessage": "Invalid API key %s"}`, r.Header.Get("X-Octopus-ApiKey"))
		},
		"/api/Spaces-1/tasks/ServerTasks-403": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"ErrorMessage": "You do not have permission to perform this action.", "Errors": ["Missing permission: TaskView"]}`)
		},
		"/api/Spaces-1/tasks/ServerTasks-500": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, longBody)
		},
		"/api/Spaces-1/tasks/ServerTasks-503": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, "<html><body>Octopus Server is starting</body></html>")
		},
		"/api/Spaces-1/tasks/ServerTasks-429": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusTooManyRequests)
		},
		"/api/Spaces-1/tasks/ServerTasks-200": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "<html>Login</html> "+r.Header.Get("X-Octopus-ApiKey"))
		},
		"/api/Spaces-1/tasks/ServerTasks-201": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"Id": "ServerTasks-201", "State": 3}`)
		},
	})
	c := newTestClient(t, srv.URL, ClientOptions{})
	ctx := context.Background()
	get := func(id string) error {
		_, err := c.Task(ctx, id)
		if err == nil {
			t.Fatalf("Task(%s): no error", id)
		}
		if strings.Contains(err.Error(), testKey) {
			t.Errorf("Task(%s): error shows the API key: %v", id, err)
		}
		if !strings.Contains(err.Error(), "/api/Spaces-1/tasks/"+id) {
			t.Errorf("Task(%s): error %q does not name the endpoint", id, err)
		}
		return err
	}

	err := get("ServerTasks-401")
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "check the API key and its permissions") {
		t.Errorf("401: %v", err)
	}
	err = get("ServerTasks-403")
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "Missing permission: TaskView") {
		t.Errorf("403: %v", err)
	}
	if err := get("ServerTasks-404"); !errors.Is(err, ErrNotFound) {
		t.Errorf("404: %v", err)
	}
	var se *ServerError
	if err := get("ServerTasks-500"); !errors.As(err, &se) || se.StatusCode != 500 || len(se.Excerpt) > excerptSize+len("…") {
		t.Errorf("500: %v (excerpt %d bytes)", err, len(se.Excerpt))
	}
	if err := get("ServerTasks-503"); !errors.As(err, &se) || se.StatusCode != 503 || !strings.Contains(se.Excerpt, "starting") {
		t.Errorf("503: %v", err)
	}
	if err := get("ServerTasks-429"); !errors.As(err, &se) || se.StatusCode != 429 {
		t.Errorf("429: %v", err)
	}
	if err := get("ServerTasks-200"); !errors.Is(err, ErrMalformedResponse) || !strings.Contains(err.Error(), "<html>") {
		t.Errorf("HTML: %v", err)
	}
	if err := get("ServerTasks-201"); !errors.Is(err, ErrMalformedResponse) {
		t.Errorf("wrong type: %v", err)
	}

	// A wrong key is a 401 on the first request, the space lookup.
	bad, _ := NewClient(srv.URL, "API-WRONG", ClientOptions{})
	if _, err := bad.Project(ctx, "Website"); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("wrong key: %v", err)
	}
}

func TestMalformedDashboardNamesEndpoint(t *testing.T) {
	srv, _ := newFake(t, map[string]http.HandlerFunc{
		"/api/Spaces-1/dashboard/dynamic": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"Items": [{"State": "Success"`)
		},
	})
	c := newTestClient(t, srv.URL, ClientOptions{})
	_, err := c.Dashboard(context.Background(), []string{"Projects-81"}, []string{"Environments-2"})
	if !errors.Is(err, ErrMalformedResponse) || !strings.Contains(err.Error(), "GET /api/Spaces-1/dashboard/dynamic?") {
		t.Errorf("got %v", err)
	}
	srv2, _ := newFake(t, map[string]http.HandlerFunc{
		"/api/Spaces-1/dashboard/dynamic": func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `null`) },
	})
	c = newTestClient(t, srv2.URL, ClientOptions{})
	if _, err := c.Dashboard(context.Background(), nil, nil); !errors.Is(err, ErrMalformedResponse) {
		t.Errorf("null dashboard: %v", err)
	}
}

func TestOversizedBody(t *testing.T) {
	chunk := []byte(strings.Repeat(" ", 64<<10))
	srv, _ := newFake(t, map[string]http.HandlerFunc{
		// Streamed, without a Content-Length.
		"/api/Spaces-1/dashboard/dynamic": func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"Items": [`))
			for range (MaxResponseSize / len(chunk)) + 2 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
			w.Write([]byte(`]}`))
		},
		// Announced by Content-Length.
		"/api/Spaces-1/tasks/ServerTasks-1/details": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(MaxResponseSize+1))
			w.Write([]byte("{"))
		},
	})
	c := newTestClient(t, srv.URL, ClientOptions{})
	if _, err := c.Dashboard(context.Background(), nil, nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("streamed: %v", err)
	}
	if _, err := c.TaskDetails(context.Background(), "ServerTasks-1"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Content-Length: %v", err)
	}
}

func TestTimeouts(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv, _ := newFake(t, map[string]http.HandlerFunc{
		"/api/Spaces-1/tasks/ServerTasks-1": func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		},
		"/api/Spaces-1/tasks/ServerTasks-2": func(w http.ResponseWriter, r *http.Request) {
			// Headers arrive, the body never does.
			w.Write([]byte(`{"Id": `))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-release:
			}
		},
	})

	// The client's own per-request timeout.
	c := newTestClient(t, srv.URL, ClientOptions{Timeout: 100 * time.Millisecond})
	if _, err := c.Space(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ServerTasks-1", "ServerTasks-2"} {
		_, err := c.Task(context.Background(), id)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no response within 100ms") {
			t.Errorf("%s: %v", id, err)
		}
	}

	// The caller's context.
	c = newTestClient(t, srv.URL, ClientOptions{})
	if _, err := c.Space(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Task(ctx, "ServerTasks-1")
	if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "no response within") {
		t.Errorf("ctx deadline: %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := c.Task(ctx, "ServerTasks-1"); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

// A caller waiting for another's space lookup can still give up.
func TestSpaceWaitHonoursContext(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	srv, _ := newFake(t, map[string]http.HandlerFunc{
		"/api/spaces/all": func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		},
	})
	defer close(release)
	c := newTestClient(t, srv.URL, ClientOptions{})
	go c.Space(context.Background())
	<-arrived
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Space(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("waiting caller: %v", err)
	}
}

func TestRedirects(t *testing.T) {
	var otherHits atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		if r.Header.Get("X-Octopus-ApiKey") != "" {
			t.Error("the API key reached another host")
		}
	}))
	defer other.Close()
	// "localhost" and "127.0.0.1" are different hosts to the client.
	otherURL := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
	srv, _ := newFake(t, map[string]http.HandlerFunc{
		"/api/spaces/all": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, otherURL+"/api/spaces/all", http.StatusFound)
		},
		"/old/api/spaces/all": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/api/spaces/all2", http.StatusMovedPermanently)
		},
		"/api/spaces/all2": func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Octopus-ApiKey") != testKey {
				t.Error("key lost on a same-host redirect")
			}
			fmt.Fprint(w, `[{"Id": "Spaces-1", "Name": "Default", "IsDefault": true}]`)
		},
	})
	c := newTestClient(t, srv.URL, ClientOptions{})
	_, err := c.Space(context.Background())
	if err == nil || !strings.Contains(err.Error(), "refusing redirect") {
		t.Errorf("cross-host redirect: %v", err)
	}
	if otherHits.Load() != 0 {
		t.Error("the other host was contacted")
	}
	c = newTestClient(t, srv.URL+"/old", ClientOptions{})
	if _, err := c.Space(context.Background()); err != nil {
		t.Errorf("same-host redirect: %v", err)
	}
}

func TestCustomHTTPClientNotModified(t *testing.T) {
	hc := &http.Client{Timeout: time.Minute}
	if _, err := NewClient("https://octopus.example.com", testKey, ClientOptions{HTTPClient: hc}); err != nil {
		t.Fatal(err)
	}
	if hc.CheckRedirect != nil {
		t.Error("the caller's http.Client was modified")
	}
}

// TestAPIKeyNeverShown formats the client and every kind of error with
// every verb and looks for the key.
func TestAPIKeyNeverShown(t *testing.T) {
	srv, _ := newFake(t, map[string]http.HandlerFunc{
		"/api/Spaces-1/tasks/ServerTasks-1": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"ErrorMessage": "bad key %s"}`, r.Header.Get("X-Octopus-ApiKey"))
		},
		"/api/Spaces-1/tasks/ServerTasks-2": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprintf(w, "upstream said: %s", r.Header.Get("X-Octopus-ApiKey"))
		},
		"/api/Spaces-1/tasks/ServerTasks-3": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "not json %s", r.Header.Get("X-Octopus-ApiKey"))
		},
		"/api/Spaces-1/tasks/ServerTasks-4": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"ErrorMessage": "%s"}`, r.Header.Get("X-Octopus-ApiKey"))
		},
	})
	c := newTestClient(t, srv.URL, ClientOptions{Space: "Default"})
	ctx := context.Background()
	things := []any{c, *c}
	for _, id := range []string{"ServerTasks-1", "ServerTasks-2", "ServerTasks-3", "ServerTasks-4"} {
		_, err := c.Task(ctx, id)
		if err == nil {
			t.Fatalf("%s: no error", id)
		}
		things = append(things, err)
	}
	_, err := c.Project(ctx, "Nope")
	things = append(things, err)
	var se *ServerError
	if errors.As(things[3].(error), &se) {
		things = append(things, se, *se)
	}
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	_, err = c.Task(ctx2, "ServerTasks-5")
	things = append(things, err)
	if _, err := NewClient(srv.URL+"/?key="+testKey, testKey, ClientOptions{}); err != nil {
		things = append(things, err)
	}
	if _, err := NewClient(srv.URL, testKey+"\x00", ClientOptions{}); err != nil {
		things = append(things, err)
	}

	for _, v := range things {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
			if s := fmt.Sprintf(verb, v); strings.Contains(s, testKey) {
				t.Errorf("%s of %T shows the API key: %s", verb, v, s)
			}
		}
	}
	if s := fmt.Sprint(c); !strings.Contains(s, srv.URL) || !strings.Contains(s, "Default") {
		t.Errorf("String() = %q", s)
	}
}

func TestServerErrorMessage(t *testing.T) {
	e := &ServerError{Method: "GET", Endpoint: "/api/x", StatusCode: 502, Excerpt: "bad gateway"}
	if got := e.Error(); got != "octopus: GET /api/x: HTTP 502 Bad Gateway: bad gateway" {
		t.Errorf("Error() = %q", got)
	}
}

func TestExcerpt(t *testing.T) {
	c := &Client{key: newAPIKey("KEY")}
	if got := c.excerpt([]byte("a\n  b\tKEY"), 100); got != "a b [REDACTED]" {
		t.Errorf("excerpt = %q", got)
	}
	got := c.excerpt([]byte(strings.Repeat("é", 100)), 11)
	if !strings.HasSuffix(got, "…") || len(got) > 11+len("…") || !strings.HasPrefix(got, "ééééé") {
		t.Errorf("cut excerpt = %q", got)
	}
	if got := c.excerpt([]byte{0xff, 'a'}, 10); got != "\uFFFDa" {
		t.Errorf("invalid UTF-8 excerpt = %q", got)
	}
}
