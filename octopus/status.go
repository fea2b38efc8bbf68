package octopus

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// State is what a build lamp shows for a project in an environment.
//
// The zero value is Unknown, so a Status nobody filled in never looks like
// a success.
type State int

// States, from the Octopus TaskState of the latest deployment; see the
// package documentation for the mapping.
const (
	Unknown             State = iota // unrecognised or unreadable state
	Idle                             // never deployed
	Queued                           // waiting to start
	Executing                        // running
	Success                          // finished without warnings
	SuccessWithWarnings              // finished, with warnings or errors logged
	Failed                           // failed
	Canceled                         // canceled, or being canceled
	TimedOut                         // timed out, e.g. in the queue
)

var stateNames = [...]string{
	Unknown:             "Unknown",
	Idle:                "Idle",
	Queued:              "Queued",
	Executing:           "Executing",
	Success:             "Success",
	SuccessWithWarnings: "SuccessWithWarnings",
	Failed:              "Failed",
	Canceled:            "Canceled",
	TimedOut:            "TimedOut",
}

// String returns the state's name, such as "SuccessWithWarnings".
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// ErrUnknownState is wrapped by Status.Err when Octopus reports a task
// state this package does not know; the State is then Unknown.
var ErrUnknownState = errors.New("octopus: unrecognised task state")

// StateOf maps an Octopus task state and its HasWarningsOrErrors flag to a
// State. Only the exact values the API documents are recognised; anything
// else, including a different capitalisation, is Unknown.
func StateOf(ts TaskState, hasWarningsOrErrors bool) State {
	switch ts {
	case TaskQueued:
		return Queued
	case TaskExecuting:
		return Executing
	case TaskSuccess:
		if hasWarningsOrErrors {
			return SuccessWithWarnings
		}
		return Success
	case TaskFailed:
		return Failed
	case TaskCanceled, TaskCancelling:
		return Canceled
	case TaskTimedOut:
		return TimedOut
	}
	return Unknown
}

// Status is the status of one project in one environment.
type Status struct {
	State State
	// Release is the version of the release the deployment shown is of.
	Release string
	// Step is the name of the running step while the deployment executes:
	// the running child of the top node of the task's activity log, such
	// as "Step 2: Run smoke tests". Empty when nothing runs or the activity
	// log could not be read.
	Step string
	// Activity is the deepest running node below Step (a deployment target
	// or a child step), if there is one.
	Activity string
	// Progress is the task's progress in percent (0–100) while it
	// executes: Octopus's overall estimate, or the running step's own when
	// Octopus gives none.
	Progress int
	// TestPhase reports that Step matches StatusOptions.TestPattern.
	TestPhase bool
	// Interruption reports a pending manual intervention or guided failure.
	Interruption bool
	// InterruptionType is the Type of the pending interruption, such as
	// InterruptionManualIntervention or InterruptionGuidedFailure, and
	// InterruptionTitle its title, when they could be read.
	InterruptionType  string
	InterruptionTitle string
	// Warnings reports that the task has logged warnings or errors (the
	// HasWarningsOrErrors flag); while Executing it often means a step
	// failed and guided failure or a retry is in progress.
	Warnings bool
	// Err explains an Unknown state, or annotates the status with the error
	// that kept it from being refreshed or completed; the rest of the
	// Status is then the last known one.
	Err error
	// TaskID and DeploymentID identify the deployment shown.
	TaskID       string
	DeploymentID string
	// QueueTime, StartTime and CompletedTime are the task's times as
	// Octopus reports them; zero when not reached.
	QueueTime     time.Time
	StartTime     time.Time
	CompletedTime time.Time
	// Updated is when the State was last read from the server; zero if it
	// never was.
	Updated time.Time
}

// String summarises a status on one line, e.g. `Executing 1.5.0 "Step 2:
// Run smoke tests" 70% testing`.
func (s Status) String() string {
	var b strings.Builder
	b.WriteString(s.State.String())
	if s.Release != "" {
		b.WriteString(" " + s.Release)
	}
	if s.Step != "" {
		fmt.Fprintf(&b, " %q", s.Step)
		if s.Activity != "" {
			fmt.Fprintf(&b, " on %q", s.Activity)
		}
	}
	if s.State == Executing && s.Progress > 0 {
		fmt.Fprintf(&b, " %d%%", s.Progress)
	}
	if s.TestPhase {
		b.WriteString(" testing")
	}
	if s.Interruption {
		t := s.InterruptionType
		if t == "" {
			t = "Interruption"
		}
		b.WriteString(" waiting:" + t)
	}
	if s.Warnings && s.State != SuccessWithWarnings {
		b.WriteString(" warnings")
	}
	if s.Err != nil {
		b.WriteString(" (" + s.Err.Error() + ")")
	}
	return b.String()
}

// Equal reports whether two statuses say the same thing. It ignores
// Updated and compares errors by their messages.
func (s Status) Equal(o Status) bool {
	return s.State == o.State && s.Release == o.Release && s.Step == o.Step &&
		s.Activity == o.Activity && s.Progress == o.Progress && s.TestPhase == o.TestPhase &&
		s.Interruption == o.Interruption && s.InterruptionType == o.InterruptionType &&
		s.InterruptionTitle == o.InterruptionTitle && s.Warnings == o.Warnings &&
		errText(s.Err) == errText(o.Err) && s.TaskID == o.TaskID && s.DeploymentID == o.DeploymentID &&
		s.QueueTime.Equal(o.QueueTime) && s.StartTime.Equal(o.StartTime) && s.CompletedTime.Equal(o.CompletedTime)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// StatusOptions configures how activity logs are read.
type StatusOptions struct {
	// TestPattern marks running steps whose name it matches as the test
	// phase (default `(?i)test`). Only the step is matched, not the nodes
	// below it, whose names are often machine names such as "test-web-01".
	TestPattern *regexp.Regexp
}

var defaultTestPattern = regexp.MustCompile(`(?i)test`)

func (o StatusOptions) testPattern() *regexp.Regexp {
	if o.TestPattern != nil {
		return o.TestPattern
	}
	return defaultTestPattern
}

// StatusFromDashboard returns the status of a project in an environment
// (IDs) as a dashboard shows it: Idle if the dashboard has no deployment of
// it, Unknown (with Err wrapping ErrNotFound) if the dashboard lists
// projects but not this one. When several items match, as with one per
// tenant, the most severe wins, so one failed tenant is never hidden by
// others' successes. Step, Progress and the interruption's details need
// WithDetails and WithInterruptions.
func StatusFromDashboard(d *Dashboard, projectID, environmentID string) Status {
	if d == nil {
		return Status{Err: fmt.Errorf("octopus: no dashboard: %w", ErrMalformedResponse)}
	}
	var best *DashboardItem
	for i := range d.Items {
		it := &d.Items[i]
		if !strings.EqualFold(it.ProjectID, projectID) || !strings.EqualFold(it.EnvironmentID, environmentID) {
			continue
		}
		if best == nil || worse(it, best) {
			best = it
		}
	}
	if best != nil {
		return statusFromItem(best)
	}
	if len(d.Projects) > 0 && !hasRef(d.Projects, projectID) {
		return Status{Err: &missingProjectError{projectID}}
	}
	return Status{State: Idle}
}

// missingProjectError is the Err of a project the dashboard does not list.
type missingProjectError struct{ id string }

func (e *missingProjectError) Error() string {
	return fmt.Sprintf("octopus: project %s is missing from the dashboard (deleted, or hidden from this API key)", e.id)
}

func (e *missingProjectError) Is(target error) bool { return target == ErrNotFound }

func hasRef(refs []DashboardRef, id string) bool {
	for _, r := range refs {
		if strings.EqualFold(r.ID, id) {
			return true
		}
	}
	return false
}

// severity orders states for picking among several items: failures first,
// then what cannot be trusted, then what is in progress, then successes.
func severity(s State) int {
	switch s {
	case Failed:
		return 8
	case TimedOut:
		return 7
	case Unknown:
		return 6
	case Canceled:
		return 5
	case Executing:
		return 4
	case Queued:
		return 3
	case SuccessWithWarnings:
		return 2
	case Success:
		return 1
	}
	return 0
}

// worse reports whether a should be shown rather than b.
func worse(a, b *DashboardItem) bool {
	sa, sb := severity(StateOf(a.State, a.HasWarningsOrErrors)), severity(StateOf(b.State, b.HasWarningsOrErrors))
	if sa != sb {
		return sa > sb
	}
	if a.HasPendingInterruptions != b.HasPendingInterruptions {
		return a.HasPendingInterruptions
	}
	ta, tb := a.QueueTime, b.QueueTime
	if ta.IsZero() || tb.IsZero() {
		ta, tb = a.Created, b.Created
	}
	return ta.After(tb)
}

func statusFromItem(it *DashboardItem) Status {
	st := Status{
		State:         StateOf(it.State, it.HasWarningsOrErrors),
		Release:       it.ReleaseVersion,
		Interruption:  it.HasPendingInterruptions,
		Warnings:      it.HasWarningsOrErrors,
		TaskID:        it.TaskID,
		DeploymentID:  it.DeploymentID,
		QueueTime:     it.QueueTime,
		StartTime:     it.StartTime,
		CompletedTime: it.CompletedTime,
	}
	if st.DeploymentID == "" && isID(it.ID, "Deployments-") {
		st.DeploymentID = it.ID
	}
	if st.State == Unknown {
		st.Err = fmt.Errorf("%w %q", ErrUnknownState, string(it.State))
	}
	return st
}

// StatusFromTask returns the status a task shows by itself, for callers
// that start from a deployment rather than the dashboard (the task does not
// know the release version).
func StatusFromTask(t *Task) Status {
	if t == nil {
		return Status{Err: fmt.Errorf("octopus: no task: %w", ErrMalformedResponse)}
	}
	st := Status{
		State:         StateOf(t.State, t.HasWarningsOrErrors),
		Interruption:  t.HasPendingInterruptions,
		Warnings:      t.HasWarningsOrErrors,
		TaskID:        t.ID,
		QueueTime:     t.QueueTime,
		StartTime:     t.StartTime,
		CompletedTime: t.CompletedTime,
	}
	if st.State == Unknown {
		st.Err = fmt.Errorf("%w %q", ErrUnknownState, string(t.State))
	}
	return st
}

// WithDetails returns s with Step, Activity, Progress and TestPhase taken
// from a task's activity log. Details of another task than s.TaskID are
// ignored. The state itself is never changed.
func (s Status) WithDetails(td *TaskDetails, opts StatusOptions) Status {
	if td == nil || (s.TaskID != "" && td.Task.ID != "" && !strings.EqualFold(s.TaskID, td.Task.ID)) {
		return s
	}
	path := runningPath(td.ActivityLogs)
	s.Step, s.Activity, s.TestPhase = "", "", false
	if len(path) > 0 {
		s.Step = path[0].Name
		if len(path) > 1 {
			s.Activity = path[len(path)-1].Name
		}
		s.TestPhase = opts.testPattern().MatchString(s.Step)
	}
	p := td.Progress.ProgressPercentage
	for i := len(path) - 1; p <= 0 && i >= 0; i-- {
		p = path[i].ProgressPercentage
	}
	s.Progress = min(max(p, 0), 100)
	return s
}

// runningPath returns the running nodes below the first top node that has
// any, from the step down to the deepest. At each level the first running
// node is followed, so parallel steps report the first.
func runningPath(top []ActivityLog) []*ActivityLog {
	for i := range top {
		var path []*ActivityLog
		nodes := top[i].Children
		for {
			var next *ActivityLog
			for j := range nodes {
				if nodes[j].Status == ActivityRunning {
					next = &nodes[j]
					break
				}
			}
			if next == nil {
				break
			}
			path = append(path, next)
			nodes = next.Children
		}
		if len(path) > 0 {
			return path
		}
	}
	return nil
}

// WithInterruptions returns s with the type and title of the first pending
// interruption of its task. An empty list leaves s as it is: the dashboard's
// flag stands until the next poll says otherwise.
func (s Status) WithInterruptions(list []Interruption) Status {
	for _, in := range list {
		if !in.IsPending || (s.TaskID != "" && in.TaskID != "" && !strings.EqualFold(in.TaskID, s.TaskID)) {
			continue
		}
		s.Interruption = true
		s.InterruptionType = in.Type
		s.InterruptionTitle = in.Title
		return s
	}
	return s
}
