package octopus

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStateOf(t *testing.T) {
	tests := []struct {
		ts       TaskState
		warnings bool
		want     State
	}{
		{TaskQueued, false, Queued},
		{TaskExecuting, false, Executing},
		{TaskExecuting, true, Executing},
		{TaskSuccess, false, Success},
		{TaskSuccess, true, SuccessWithWarnings},
		{TaskFailed, false, Failed},
		{TaskFailed, true, Failed},
		{TaskCanceled, false, Canceled},
		{TaskCancelling, false, Canceled},
		{TaskTimedOut, false, TimedOut},
		// Anything not spelled exactly as documented is unknown, never a
		// success: the old script showed green for all of these.
		{"", false, Unknown},
		{"success", false, Unknown},
		{"SUCCESS", false, Unknown},
		{" Success", false, Unknown},
		{"Succeeded", false, Unknown},
		{"Paused", false, Unknown},
		{"Failed ", true, Unknown},
		{"null", false, Unknown},
	}
	for _, tt := range tests {
		if got := StateOf(tt.ts, tt.warnings); got != tt.want {
			t.Errorf("StateOf(%q, %v) = %v, want %v", tt.ts, tt.warnings, got, tt.want)
		}
	}
}

func TestStateString(t *testing.T) {
	for s := Unknown; s <= TimedOut; s++ {
		if strings.HasPrefix(s.String(), "State(") {
			t.Errorf("State %d has no name", int(s))
		}
	}
	if got := State(42).String(); got != "State(42)" {
		t.Errorf("State(42).String() = %q", got)
	}
	if got := State(-1).String(); got != "State(-1)" {
		t.Errorf("State(-1).String() = %q", got)
	}
	var zero Status
	if zero.State != Unknown {
		t.Errorf("zero Status has State %v, want Unknown", zero.State)
	}
}

func TestStatusFromDashboardMixed(t *testing.T) {
	d, err := ParseDashboard(readTestdata(t, "dashboard-mixed.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, project, env string
		want               State
		release            string
		interruption       bool
		warnings           bool
		unknownErr         bool
		notFoundErr        bool
	}{
		{"executing with guided failure", "Projects-81", "Environments-2", Executing, "2.17.0", true, true, false, false},
		{"success", "Projects-81", "Environments-3", Success, "2.17.0", false, false, false, false},
		{"never deployed", "Projects-81", "Environments-1", Idle, "", false, false, false, false},
		{"success with warnings", "Projects-90", "Environments-3", SuccessWithWarnings, "5.2.1", false, true, false, false},
		{"failed", "Projects-90", "Environments-2", Failed, "5.2.0", false, true, false, false},
		{"tenants: one failed", "Projects-95", "Environments-2", Failed, "1.0.4", false, true, false, false},
		{"unknown state", "Projects-97", "Environments-1", Unknown, "0.9.0", false, false, true, false},
		{"queued", "Projects-97", "Environments-2", Queued, "0.8.9", false, false, false, false},
		{"cancelling", "Projects-97", "Environments-3", Canceled, "0.8.9", false, false, false, false},
		{"IDs ignore case", "projects-90", "environments-2", Failed, "5.2.0", false, true, false, false},
		{"project not on the dashboard", "Projects-5", "Environments-2", Unknown, "", false, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := StatusFromDashboard(d, tt.project, tt.env)
			if st.State != tt.want || st.Release != tt.release || st.Interruption != tt.interruption || st.Warnings != tt.warnings {
				t.Errorf("got %+v", st)
			}
			if got := errors.Is(st.Err, ErrUnknownState); got != tt.unknownErr {
				t.Errorf("Err = %v, want ErrUnknownState: %v", st.Err, tt.unknownErr)
			}
			if got := errors.Is(st.Err, ErrNotFound); got != tt.notFoundErr {
				t.Errorf("Err = %v, want ErrNotFound: %v", st.Err, tt.notFoundErr)
			}
			if !tt.unknownErr && !tt.notFoundErr && st.Err != nil {
				t.Errorf("unexpected Err %v", st.Err)
			}
		})
	}
	st := StatusFromDashboard(d, "Projects-81", "Environments-2")
	if st.TaskID != "ServerTasks-11633" || st.DeploymentID != "Deployments-412" {
		t.Errorf("IDs: %+v", st)
	}
	if want := time.Date(2026, 3, 2, 9, 14, 9, 101e6, time.UTC); !st.StartTime.Equal(want) {
		t.Errorf("StartTime = %v, want %v", st.StartTime, want)
	}
	if st := StatusFromDashboard(d, "Projects-97", "Environments-1"); !strings.Contains(st.Err.Error(), `"Paused"`) {
		t.Errorf("unknown state error %q does not name the state", st.Err)
	}
}

func TestStatusFromDashboardEdges(t *testing.T) {
	if st := StatusFromDashboard(nil, "Projects-1", "Environments-1"); st.State != Unknown || st.Err == nil {
		t.Errorf("nil dashboard: %+v", st)
	}
	// A dashboard that does not list projects cannot say a project is
	// missing: no item means never deployed.
	if st := StatusFromDashboard(&Dashboard{Items: []DashboardItem{}}, "Projects-1", "Environments-1"); st.State != Idle || st.Err != nil {
		t.Errorf("empty dashboard: %+v", st)
	}
	// Among equally severe items the newest wins.
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := &Dashboard{Items: []DashboardItem{
		{ProjectID: "Projects-1", EnvironmentID: "Environments-1", State: TaskSuccess, ReleaseVersion: "1.0", QueueTime: t0},
		{ProjectID: "Projects-1", EnvironmentID: "Environments-1", State: TaskSuccess, ReleaseVersion: "1.1", QueueTime: t0.Add(time.Hour)},
		{ProjectID: "Projects-1", EnvironmentID: "Environments-1", State: TaskSuccess, ReleaseVersion: "0.9", QueueTime: t0.Add(-time.Hour)},
	}}
	if st := StatusFromDashboard(d, "Projects-1", "Environments-1"); st.Release != "1.1" {
		t.Errorf("newest item not chosen: %+v", st)
	}
	// An unknown state outranks successes: it must never hide behind them.
	d.Items = append(d.Items, DashboardItem{ProjectID: "Projects-1", EnvironmentID: "Environments-1", State: "Weird", ReleaseVersion: "1.2"})
	if st := StatusFromDashboard(d, "Projects-1", "Environments-1"); st.State != Unknown || st.Release != "1.2" {
		t.Errorf("unknown item hidden: %+v", st)
	}
}

func TestWithDetails(t *testing.T) {
	exec, err := ParseTaskDetails(readTestdata(t, "task-details-executing.json"))
	if err != nil {
		t.Fatal(err)
	}
	base := Status{State: Executing, TaskID: "ServerTasks-11633"}

	st := base.WithDetails(exec, StatusOptions{})
	if st.Step != "Step 2: Run smoke tests" || st.Activity != "Run script 'smoke.sh'" || st.Progress != 70 || !st.TestPhase {
		t.Errorf("executing: %+v", st)
	}
	if st.State != Executing {
		t.Errorf("WithDetails changed the state to %v", st.State)
	}

	// A custom pattern that the step does not match.
	st = base.WithDetails(exec, StatusOptions{TestPattern: regexp.MustCompile(`^Step 9`)})
	if st.TestPhase {
		t.Errorf("TestPhase with a pattern that does not match: %+v", st)
	}

	// Details of another task are ignored.
	other := Status{State: Executing, TaskID: "ServerTasks-1", Step: "kept"}
	if got := other.WithDetails(exec, StatusOptions{}); got.Step != "kept" {
		t.Errorf("details of another task used: %+v", got)
	}

	for _, name := range []string{"task-details-queued.json", "task-details-success.json"} {
		td, err := ParseTaskDetails(readTestdata(t, name))
		if err != nil {
			t.Fatal(err)
		}
		st := base.WithDetails(td, StatusOptions{})
		if st.Step != "" || st.Activity != "" || st.TestPhase {
			t.Errorf("%s: a step is running: %+v", name, st)
		}
	}
	if got := base.WithDetails(nil, StatusOptions{}); !got.Equal(base) {
		t.Errorf("nil details changed the status: %+v", got)
	}
}

func TestWithDetailsTree(t *testing.T) {
	node := func(name string, st ActivityStatus, pct int, kids ...ActivityLog) ActivityLog {
		return ActivityLog{Name: name, Status: st, ProgressPercentage: pct, Children: kids}
	}
	tests := []struct {
		name     string
		td       TaskDetails
		step     string
		activity string
		progress int
		test     bool
	}{
		{
			// The target's name contains "test"; only the step counts.
			name: "deploying to a test machine is not the test phase",
			td: TaskDetails{ActivityLogs: []ActivityLog{node("Deploy Web release 1 to Test", ActivityRunning, 0,
				node("Step 1: Deploy web", ActivityRunning, 0, node("test-web-01", ActivityRunning, 0)),
				node("Step 2: Run smoke tests", ActivityPending, 0))}},
			step: "Step 1: Deploy web", activity: "test-web-01",
		},
		{
			name: "no overall progress: the deepest node's own",
			td: TaskDetails{ActivityLogs: []ActivityLog{node("Deploy", ActivityRunning, 0,
				node("Step 1: Integration tests", ActivityRunning, 10, node("worker", ActivityRunning, 55)))}},
			step: "Step 1: Integration tests", activity: "worker", progress: 55, test: true,
		},
		{
			name: "progress is clamped",
			td: TaskDetails{Progress: TaskProgress{ProgressPercentage: 250}, ActivityLogs: []ActivityLog{node("Deploy", ActivityRunning, 0,
				node("Step 1", ActivityRunning, 0))}},
			step: "Step 1", progress: 100,
		},
		{
			name: "negative progress",
			td: TaskDetails{Progress: TaskProgress{ProgressPercentage: -5}, ActivityLogs: []ActivityLog{node("Deploy", ActivityRunning, 0,
				node("Step 1", ActivityRunning, -3))}},
			step: "Step 1",
		},
		{
			name: "first of parallel steps, below a top node that is not marked running",
			td: TaskDetails{ActivityLogs: []ActivityLog{node("Deploy", ActivityPending, 0,
				node("Step 1", ActivitySuccess, 0),
				node("Step 2: A", ActivityRunning, 0),
				node("Step 3: B", ActivityRunning, 0))}},
			step: "Step 2: A",
		},
		{
			name: "a running node below a finished one is ignored",
			td: TaskDetails{ActivityLogs: []ActivityLog{node("Deploy", ActivityRunning, 0,
				node("Step 1", ActivityFailed, 0, node("web", ActivityRunning, 0)))}},
		},
		{
			name: "second top node",
			td: TaskDetails{ActivityLogs: []ActivityLog{
				node("Deploy", ActivitySuccess, 0, node("Step 1", ActivitySuccess, 0)),
				node("Other", ActivityRunning, 0, node("Step 1: Test", ActivityRunning, 0)),
			}},
			step: "Step 1: Test", test: true,
		},
		{
			name: "unknown statuses are not running",
			td: TaskDetails{ActivityLogs: []ActivityLog{node("Deploy", ActivityRunning, 0,
				node("Step 1", "running", 0), node("Step 2", "Busy", 0))}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := Status{State: Executing}.WithDetails(&tt.td, StatusOptions{})
			if st.Step != tt.step || st.Activity != tt.activity || st.Progress != tt.progress || st.TestPhase != tt.test {
				t.Errorf("got step %q activity %q progress %d test %v, want %q %q %d %v",
					st.Step, st.Activity, st.Progress, st.TestPhase, tt.step, tt.activity, tt.progress, tt.test)
			}
		})
	}
}

func TestWithInterruptions(t *testing.T) {
	base := Status{State: Executing, TaskID: "ServerTasks-5", Interruption: true}
	list := []Interruption{
		{ID: "Interruptions-1", Type: InterruptionManualIntervention, Title: "old", IsPending: false, TaskID: "ServerTasks-5"},
		{ID: "Interruptions-2", Type: InterruptionManualIntervention, Title: "other task", IsPending: true, TaskID: "ServerTasks-6"},
		{ID: "Interruptions-3", Type: InterruptionGuidedFailure, Title: "requires failure guidance", IsPending: true, TaskID: "ServerTasks-5"},
	}
	st := base.WithInterruptions(list)
	if !st.Interruption || st.InterruptionType != InterruptionGuidedFailure || st.InterruptionTitle != "requires failure guidance" {
		t.Errorf("got %+v", st)
	}
	if st := base.WithInterruptions(nil); !st.Interruption || st.InterruptionType != "" {
		t.Errorf("empty list: %+v", st)
	}
}

func TestStatusString(t *testing.T) {
	tests := []struct {
		st   Status
		want string
	}{
		{Status{}, "Unknown"},
		{Status{State: Idle}, "Idle"},
		{Status{State: Success, Release: "2.16.0"}, "Success 2.16.0"},
		{Status{State: SuccessWithWarnings, Release: "1.0", Warnings: true}, "SuccessWithWarnings 1.0"},
		{Status{State: Executing, Release: "1.5.0", Step: "Step 2: Run smoke tests", Activity: "web01", Progress: 70, TestPhase: true},
			`Executing 1.5.0 "Step 2: Run smoke tests" on "web01" 70% testing`},
		{Status{State: Executing, Release: "1.5.0", Interruption: true, InterruptionType: InterruptionGuidedFailure, Warnings: true},
			"Executing 1.5.0 waiting:GuidedFailure warnings"},
		{Status{State: Failed, Release: "1.5.0", Err: errors.New("octopus: boom")}, "Failed 1.5.0 (octopus: boom)"},
	}
	for _, tt := range tests {
		if got := tt.st.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestStatusEqual(t *testing.T) {
	now := time.Now()
	a := Status{State: Executing, Step: "x", Err: errors.New("e"), Updated: now, StartTime: now}
	b := a
	b.Updated = now.Add(time.Minute)
	b.Err = errors.New("e")
	b.StartTime = now.In(time.FixedZone("X", 3600))
	if !a.Equal(b) {
		t.Error("statuses differing only in Updated, error identity and time zone are not Equal")
	}
	b.Progress = 1
	if a.Equal(b) {
		t.Error("different Progress is Equal")
	}
	c := a
	c.Err = nil
	if a.Equal(c) {
		t.Error("error vs no error is Equal")
	}
}

func TestStatusFromTask(t *testing.T) {
	var task Task
	if err := decodeJSON("task", readTestdata(t, "task-executing.json"), &task); err != nil {
		t.Fatal(err)
	}
	st := StatusFromTask(&task)
	if st.State != Executing || !st.Interruption || !st.Warnings || st.TaskID != "ServerTasks-11633" {
		t.Errorf("got %+v", st)
	}
	task.State = "Zombie"
	if st := StatusFromTask(&task); st.State != Unknown || !errors.Is(st.Err, ErrUnknownState) {
		t.Errorf("unknown task state: %+v", st)
	}
	if st := StatusFromTask(nil); st.State != Unknown || st.Err == nil {
		t.Errorf("nil task: %+v", st)
	}
}

func TestParseRejectsEmptyDashboards(t *testing.T) {
	for _, body := range []string{"null", "{}", `{"Items": null}`, "[]", "", "<html>"} {
		if _, err := ParseDashboard([]byte(body)); !errors.Is(err, ErrMalformedResponse) {
			t.Errorf("ParseDashboard(%q) error = %v, want ErrMalformedResponse", body, err)
		}
	}
	if d, err := ParseDashboard([]byte(`{"Items": []}`)); err != nil || len(d.Items) != 0 {
		t.Errorf("empty Items: %v, %v", d, err)
	}
}

func TestLenientTimes(t *testing.T) {
	body := `{"Items": [
		{"ProjectId": "Projects-1", "EnvironmentId": "Environments-1", "State": "Success", "QueueTime": "yesterday", "StartTime": 12, "CompletedTime": "2026-01-02T03:04:05"},
		{"ProjectId": "Projects-2", "EnvironmentId": "Environments-1", "State": "Success", "QueueTime": null}
	]}`
	d, err := ParseDashboard([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	it := d.Items[0]
	if !it.QueueTime.IsZero() || !it.StartTime.IsZero() {
		t.Errorf("odd timestamps not zero: %v %v", it.QueueTime, it.StartTime)
	}
	if want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC); !it.CompletedTime.Equal(want) {
		t.Errorf("CompletedTime = %v, want %v", it.CompletedTime, want)
	}
	if st := StatusFromDashboard(d, "Projects-1", "Environments-1"); st.State != Success {
		t.Errorf("state lost over timestamps: %+v", st)
	}
}
