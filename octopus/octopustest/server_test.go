package octopustest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pikit/pikit/octopus"
	"github.com/pikit/pikit/octopus/octopustest"
)

// get fetches a path with the default key and decodes it into a generic
// value.
func get(t *testing.T, srv *octopustest.Server, path string) (int, any) {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	req.Header.Set("X-Octopus-ApiKey", octopustest.DefaultAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET %s: not JSON: %v: %s", path, err, body)
	}
	return resp.StatusCode, v
}

// hasKeys fails unless the object has every key, spelled exactly.
func hasKeys(t *testing.T, what string, v any, keys ...string) {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s is %T, not an object", what, v)
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("%s lacks %q", what, k)
		}
	}
}

var octopusTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$`)

// The property lists below are those of the Octopus API's swagger
// definitions (DashboardItemResource, TaskResource, ActivityLogTreeNode,
// ResourceCollection) and of real sample bodies (deployments,
// interruptions): the fake must serve the same shapes.
func TestShapesMatchTheAPI(t *testing.T) {
	srv := octopustest.NewServer(octopustest.Options{})
	defer srv.Close()
	p := srv.AddProject("", "Website")
	e := srv.AddEnvironment("", "Production")
	if err := srv.Apply("Website", "Production", octopustest.Phase{Release: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Apply(p, e, octopustest.Phase{State: octopustest.StateExecuting, Step: "Run smoke tests", Progress: 40,
		Warnings: true, Interruption: octopustest.GuidedFailure}); err != nil {
		t.Fatal(err)
	}

	_, spaces := get(t, srv, "/api/spaces/all")
	hasKeys(t, "space", spaces.([]any)[0], "Id", "Name", "Slug", "Description", "IsDefault", "TaskQueueStopped", "SpaceManagersTeams", "Links")

	_, projects := get(t, srv, "/api/Spaces-1/projects/all")
	hasKeys(t, "project", projects.([]any)[0], "Id", "SpaceId", "Name", "Slug", "IsDisabled", "ProjectGroupId", "LifecycleId", "Links")

	_, envs := get(t, srv, "/api/Spaces-1/environments/all")
	hasKeys(t, "environment", envs.([]any)[0], "Id", "SpaceId", "Name", "SortOrder", "UseGuidedFailure", "Links")

	_, dash := get(t, srv, "/api/Spaces-1/dashboard/dynamic?projects="+p+"&environments="+e)
	hasKeys(t, "dashboard", dash, "Projects", "ProjectGroups", "Environments", "Tenants", "Items", "PreviousItems", "ProjectLimit", "IsFiltered")
	items := dash.(map[string]any)["Items"].([]any)
	if len(items) != 1 {
		t.Fatalf("%d dashboard items", len(items))
	}
	hasKeys(t, "dashboard item", items[0], "ChannelId", "CompletedTime", "Created", "DeploymentId", "Duration", "EnvironmentId",
		"ErrorMessage", "HasPendingInterruptions", "HasWarningsOrErrors", "Id", "IsCompleted", "IsCurrent", "IsPrevious", "Links",
		"ProjectId", "QueueTime", "ReleaseId", "ReleaseVersion", "StartTime", "State", "TaskId", "TenantId")
	item := items[0].(map[string]any)
	if item["State"] != "Executing" || item["HasPendingInterruptions"] != true || item["TenantId"] != nil || item["CompletedTime"] != nil {
		t.Errorf("item %v", item)
	}
	if s, _ := item["QueueTime"].(string); !octopusTime.MatchString(s) {
		t.Errorf("QueueTime %q is not in Octopus's format", s)
	}

	_, deps := get(t, srv, "/api/Spaces-1/deployments?projects="+p+"&environments="+e+"&take=1")
	hasKeys(t, "deployments", deps, "ItemType", "TotalResults", "ItemsPerPage", "NumberOfPages", "LastPageNumber", "Items", "Links")
	dep := deps.(map[string]any)["Items"].([]any)[0]
	hasKeys(t, "deployment", dep, "Id", "SpaceId", "ReleaseId", "ChannelId", "DeploymentProcessId", "Changes", "EnvironmentId", "TenantId",
		"TaskId", "ProjectId", "UseGuidedFailure", "FormValues", "QueueTime", "Name", "Created", "DeployedBy", "FailureEncountered", "Links")
	hasKeys(t, "deployment links", dep.(map[string]any)["Links"], "Self", "Release", "Environment", "Project", "Task", "Web", "Interruptions")
	hasKeys(t, "deployments links", deps.(map[string]any)["Links"], "Self", "Template", "Page.All", "Page.Current", "Page.Last")

	taskID := item["TaskId"].(string)
	_, task := get(t, srv, "/api/Spaces-1/tasks/"+taskID)
	hasKeys(t, "task", task, "Arguments", "CanRerun", "Completed", "CompletedTime", "Description", "Duration", "ErrorMessage",
		"FinishedSuccessfully", "HasBeenPickedUpByProcessor", "HasPendingInterruptions", "HasWarningsOrErrors", "Id", "IsCompleted",
		"LastModifiedBy", "LastModifiedOn", "LastUpdatedTime", "Links", "Name", "QueueTime", "QueueTimeExpiry", "ServerNode",
		"SpaceId", "StartTime", "State")

	_, details := get(t, srv, "/api/Spaces-1/tasks/"+taskID+"/details?verbose=false&tail=1")
	hasKeys(t, "task details", details, "ActivityLogs", "Id", "Links", "PhysicalLogSize", "Progress", "Task")
	root := details.(map[string]any)["ActivityLogs"].([]any)[0]
	hasKeys(t, "activity log node", root, "Children", "Ended", "Id", "LogElements", "Name", "ProgressMessage", "ProgressPercentage",
		"ShowAtSummaryLevel", "Started", "Status")
	hasKeys(t, "task progress", details.(map[string]any)["Progress"], "ProgressPercentage", "EstimatedTimeRemaining")

	_, intr := get(t, srv, "/api/Spaces-1/interruptions?regarding="+taskID+"&pendingOnly=true")
	list := intr.(map[string]any)["Items"].([]any)
	if len(list) != 1 {
		t.Fatalf("%d interruptions", len(list))
	}
	hasKeys(t, "interruption", list[0], "Id", "SpaceId", "Title", "Type", "Created", "IsPending", "Form", "RelatedDocumentIds",
		"ResponsibleTeamIds", "ResponsibleUserId", "CanTakeResponsibility", "HasResponsibility", "TaskId", "CorrelationId",
		"IsLinkedToOtherInterruption", "Links")
	if in := list[0].(map[string]any); in["Type"] != "GuidedFailure" || in["IsPending"] != true {
		t.Errorf("interruption %v", in)
	}
}

func TestAuthAndErrors(t *testing.T) {
	srv := octopustest.NewServer(octopustest.Options{APIKey: "API-SECRET"})
	defer srv.Close()
	for _, key := range []string{"", "API-WRONG", octopustest.DefaultAPIKey} {
		req, _ := http.NewRequest("GET", srv.URL+"/api/spaces/all", nil)
		if key != "" {
			req.Header.Set("X-Octopus-ApiKey", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(string(body), `"ErrorMessage"`) {
			t.Errorf("key %q: %d %s", key, resp.StatusCode, body)
		}
	}
	c, _ := octopus.NewClient(srv.URL, "API-SECRET", octopus.ClientOptions{})
	if _, err := c.Space(context.Background()); err != nil {
		t.Errorf("right key: %v", err)
	}
	if _, err := c.Task(context.Background(), "ServerTasks-1"); !errors.Is(err, octopus.ErrNotFound) {
		t.Errorf("unknown task: %v", err)
	}
	bad, _ := octopus.NewClient(srv.URL, "API-SECRET", octopus.ClientOptions{Space: "Spaces-9"})
	if _, err := bad.Space(context.Background()); !errors.Is(err, octopus.ErrNotFound) {
		t.Errorf("unknown space: %v", err)
	}
	// Unknown routes and spaces are 404s with Octopus's error body.
	code, v := get(t, octopustest.NewServer(octopustest.Options{}), "/api/nothing/here")
	if code != 404 {
		t.Errorf("unknown route: %d", code)
	}
	hasKeys(t, "error", v, "ErrorMessage", "Errors")
}

func TestFaults(t *testing.T) {
	srv := octopustest.NewServer(octopustest.Options{})
	defer srv.Close()
	srv.AddProject("", "Website")
	srv.AddEnvironment("", "Production")
	c, _ := octopus.NewClient(srv.URL, octopustest.DefaultAPIKey, octopus.ClientOptions{Timeout: 200 * time.Millisecond})
	ctx := context.Background()

	srv.Fail(octopustest.Fault{Endpoint: octopustest.EndpointProjects, Status: 503, Times: 2})
	for range 2 {
		var se *octopus.ServerError
		if _, err := c.Project(ctx, "Website"); !errors.As(err, &se) || se.StatusCode != 503 {
			t.Errorf("503 fault: %v", err)
		}
	}
	if _, err := c.Project(ctx, "Website"); err != nil {
		t.Errorf("fault outlived its Times: %v", err)
	}

	srv.Fail(octopustest.Fault{Endpoint: octopustest.EndpointDashboard, Body: `{"Items": [`})
	if _, err := c.Dashboard(ctx, nil, nil); !errors.Is(err, octopus.ErrMalformedResponse) {
		t.Errorf("malformed fault: %v", err)
	}
	srv.ClearFaults()

	srv.Fail(octopustest.Fault{Endpoint: octopustest.EndpointDashboard, Hang: true})
	if _, err := c.Dashboard(ctx, nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hang fault: %v", err)
	}
	if n := srv.Requests(octopustest.EndpointDashboard); n != 2 {
		t.Errorf("%d dashboard requests counted", n)
	}

	// Close releases a hanging request.
	done := make(chan error, 1)
	slow, _ := octopus.NewClient(srv.URL, octopustest.DefaultAPIKey, octopus.ClientOptions{Timeout: time.Minute})
	go func() {
		_, err := slow.Dashboard(ctx, nil, nil)
		done <- err
	}()
	for srv.Requests(octopustest.EndpointDashboard) < 3 {
		time.Sleep(time.Millisecond)
	}
	srv.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("no error from a request cut by Close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not release a hanging request")
	}
}

func status(t *testing.T, c *octopus.Client, project, env string) octopus.Status {
	t.Helper()
	ctx := context.Background()
	p, err := c.Project(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	e, err := c.Environment(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx, p.ID, e.ID, octopus.StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestApplyEveryState(t *testing.T) {
	srv := octopustest.NewServer(octopustest.Options{})
	defer srv.Close()
	srv.AddProject("", "Website")
	srv.AddEnvironment("", "Test")
	c, _ := octopus.NewClient(srv.URL, octopustest.DefaultAPIKey, octopus.ClientOptions{})

	if st := status(t, c, "Website", "Test"); st.State != octopus.Idle {
		t.Errorf("before any deployment: %v", st)
	}
	if err := srv.Apply("Website", "Test", octopustest.Phase{State: "Executing"}); err == nil {
		t.Error("a phase without a release before any deployment was accepted")
	}
	if err := srv.Apply("Website", "Test", octopustest.Phase{Release: "1.0", Step: "Nope"}); err == nil {
		t.Error("an unknown step was accepted")
	}
	tests := []struct {
		phase octopustest.Phase
		want  string
	}{
		{octopustest.Phase{Release: "1.0"}, "Queued 1.0"},
		{octopustest.Phase{State: "Executing", Step: "Deploy web", Progress: 30}, `Executing 1.0 "Step 1: Deploy web" on "web01" 30%`},
		// The environment's name, in the top node, is not the test phase.
		{octopustest.Phase{State: "Executing", Step: "Run smoke tests", Progress: 70}, `Executing 1.0 "Step 2: Run smoke tests" on "web01" 70% testing`},
		{octopustest.Phase{State: "Executing", Step: "Run smoke tests", Progress: 70, Warnings: true, Interruption: octopustest.GuidedFailure},
			`Executing 1.0 "Step 2: Run smoke tests" 70% testing waiting:GuidedFailure warnings`},
		{octopustest.Phase{State: "Failed"}, "Failed 1.0 warnings"},
		{octopustest.Phase{Release: "1.1", State: "Success"}, "Success 1.1"},
		{octopustest.Phase{Release: "1.2", State: "Executing", Step: "Approve release", Progress: 75, Interruption: octopustest.ManualIntervention},
			`Executing 1.2 "Step 3: Approve release" on "web01" 75% waiting:ManualIntervention`},
		{octopustest.Phase{State: "Success", Warnings: true}, "SuccessWithWarnings 1.2"},
		{octopustest.Phase{Release: "1.3", State: "Cancelling"}, "Canceled 1.3"},
		{octopustest.Phase{State: "Canceled"}, "Canceled 1.3"},
		{octopustest.Phase{Release: "1.4", State: "TimedOut"}, "TimedOut 1.4"},
		{octopustest.Phase{Release: "1.5", State: "Paused"}, `Unknown 1.5 (octopus: unrecognised task state "Paused")`},
	}
	for _, tt := range tests {
		if err := srv.Apply("Website", "Test", tt.phase); err != nil {
			t.Fatal(err)
		}
		if got := status(t, c, "Website", "Test").String(); got != tt.want {
			t.Errorf("after %+v:\n got %s\nwant %s", tt.phase, got, tt.want)
		}
	}
	// A resolved interruption is no longer pending.
	p, _ := c.Project(context.Background(), "Website")
	d, err := c.LatestDeployment(context.Background(), p.ID, "Environments-1")
	if err != nil {
		t.Fatal(err)
	}
	if list, err := c.Interruptions(context.Background(), d.TaskID); err != nil || len(list) != 0 {
		t.Errorf("interruptions of the last task: %v, %v", list, err)
	}
}

func TestPlayAndAdvance(t *testing.T) {
	srv := octopustest.NewServer(octopustest.Options{})
	defer srv.Close()
	srv.AddProject("", "Website")
	srv.AddEnvironment("", "Production")
	c, _ := octopus.NewClient(srv.URL, octopustest.DefaultAPIKey, octopus.ClientOptions{})

	if err := srv.Play(octopustest.Timeline{Project: "Website", Environment: "Production"}); err == nil {
		t.Error("empty timeline accepted")
	}
	if err := srv.Play(octopustest.Timeline{Project: "Nope", Environment: "Production", Phases: []octopustest.Phase{{Release: "1"}}}); err == nil {
		t.Error("unknown project accepted")
	}
	if err := srv.Play(octopustest.Timeline{Project: "Website", Environment: "Production",
		Phases: []octopustest.Phase{{Release: "1", Step: "Unknown step"}}}); err == nil {
		t.Error("unknown step accepted")
	}

	tl := octopustest.Timeline{
		Project: "Website", Environment: "Production", Steps: []string{"Build", "Test"}, Loop: true,
		Phases: []octopustest.Phase{
			{Release: "1.0", State: "Success"},
			{Release: "2.0"},
			{State: "Executing", Step: "Build", Progress: 50},
			{State: "Executing", Step: "Test", Progress: 90},
			{State: "Failed"},
		},
	}
	if err := srv.Play(tl); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 7 {
		got = append(got, status(t, c, "Website", "Production").String())
		srv.Advance()
	}
	want := []string{
		"Success 1.0",
		"Queued 2.0",
		`Executing 2.0 "Step 1: Build" on "web01" 50%`,
		`Executing 2.0 "Step 2: Test" on "web01" 90% testing`,
		"Failed 2.0",
		"Success 1.0", // looped
		"Queued 2.0",
	}
	if !slices.Equal(got, want) {
		t.Errorf("timeline:\n got %q\nwant %q", got, want)
	}
}

// fakeClock is a clock for Options.Now that only moves when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestTimelineFollowsClock(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	srv := octopustest.NewDemoServer(octopustest.Options{Now: clk.Now})
	defer srv.Close()
	c, _ := octopus.NewClient(srv.URL, octopustest.DefaultAPIKey, octopus.ClientOptions{})

	var seen []string
	last := ""
	// Two and a half rounds of the demo loop, a second at a time.
	for range 500 {
		st := status(t, c, "Website", "Production")
		s := st.State.String() + " " + st.Release
		if st.Step != "" {
			s += " " + st.Step
		}
		if st.Interruption {
			s += " " + st.InterruptionType
		}
		if s != last {
			seen = append(seen, s)
			last = s
		}
		clk.Add(time.Second)
	}
	text := strings.Join(seen, "\n")
	for _, want := range []string{
		"Success 1.3.2",
		"Queued 1.4.0",
		"Executing 1.4.0 Step 1: Deploy web",
		"Executing 1.4.0 Step 2: Run smoke tests",
		"Success 1.4.0",
		"Executing 1.5.0 Step 2: Run smoke tests GuidedFailure",
		"Failed 1.5.0",
		"Executing 1.5.1 Step 3: Approve release ManualIntervention",
		"SuccessWithWarnings 1.5.1",
		"Canceled 1.6.0",
		"TimedOut 1.6.1",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the demo never showed %q; it showed:\n%s", want, text)
		}
	}
	if strings.Count(text, "Queued 1.4.0") < 2 {
		t.Errorf("the demo did not loop:\n%s", text)
	}
	// The timestamps follow the fake clock.
	p, _ := c.Project(context.Background(), "Website")
	d, err := c.LatestDeployment(context.Background(), p.ID, "Environments-3")
	if err != nil {
		t.Fatal(err)
	}
	if d.Created.Year() != 2026 {
		t.Errorf("created %v", d.Created)
	}
	fmt.Fprint(io.Discard, text)
}

func TestSpacesAndPaging(t *testing.T) {
	srv := octopustest.NewServer(octopustest.Options{})
	defer srv.Close()
	id := srv.AddSpace("Platform")
	srv.AddProject(id, "Infra")
	srv.AddEnvironment("Platform", "Production")
	srv.AddEnvironment("", "Production") // same name, other space
	c, _ := octopus.NewClient(srv.URL, octopustest.DefaultAPIKey, octopus.ClientOptions{Space: "platform"})
	ctx := context.Background()
	sp, err := c.Space(ctx)
	if err != nil || sp.ID != id || sp.IsDefault {
		t.Fatalf("space %+v, %v", sp, err)
	}
	if _, err := c.Project(ctx, "Infra"); err != nil {
		t.Error(err)
	}
	def, _ := octopus.NewClient(srv.URL, octopustest.DefaultAPIKey, octopus.ClientOptions{})
	if _, err := def.Project(ctx, "Infra"); !errors.Is(err, octopus.ErrNotFound) {
		t.Errorf("project of another space found: %v", err)
	}
	_, page := get(t, srv, "/api/spaces?skip=1&take=1")
	m := page.(map[string]any)
	if m["TotalResults"] != 2.0 || len(m["Items"].([]any)) != 1 || m["NumberOfPages"] != 2.0 {
		t.Errorf("page %v", m)
	}
	for _, f := range []func(){
		func() { srv.AddSpace("Platform") },
		func() { srv.AddProject("", "Website"); srv.AddProject("", "website") },
		func() { srv.AddEnvironment("Nope", "X") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		}()
	}
}
