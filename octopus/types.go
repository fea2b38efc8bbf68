package octopus

import (
	"encoding/json"
	"errors"
	"time"
)

// The types below mirror Octopus API resources, with only the properties
// this package uses; other properties are ignored. Timestamps that are
// missing, null or in an unexpected format decode as the zero time rather
// than failing the whole response, because a status light must not go dark
// over a date it does not need.

// Space is an Octopus space.
type Space struct {
	ID        string `json:"Id"`
	Name      string `json:"Name"`
	Slug      string `json:"Slug"`
	IsDefault bool   `json:"IsDefault"`
}

// Project is an Octopus project.
type Project struct {
	ID         string `json:"Id"`
	Name       string `json:"Name"`
	Slug       string `json:"Slug"`
	SpaceID    string `json:"SpaceId"`
	IsDisabled bool   `json:"IsDisabled"`
}

// Environment is an Octopus environment.
type Environment struct {
	ID      string `json:"Id"`
	Name    string `json:"Name"`
	Slug    string `json:"Slug"`
	SpaceID string `json:"SpaceId"`
}

// Deployment is a deployment of a release to an environment.
type Deployment struct {
	ID                 string    `json:"Id"`
	Name               string    `json:"Name"`
	SpaceID            string    `json:"SpaceId"`
	ProjectID          string    `json:"ProjectId"`
	EnvironmentID      string    `json:"EnvironmentId"`
	ReleaseID          string    `json:"ReleaseId"`
	TenantID           string    `json:"TenantId"`
	TaskID             string    `json:"TaskId"`
	DeployedBy         string    `json:"DeployedBy"`
	FailureEncountered bool      `json:"FailureEncountered"`
	Created            time.Time `json:"Created"`
}

// UnmarshalJSON decodes a deployment, tolerating odd timestamps.
func (d *Deployment) UnmarshalJSON(b []byte) error {
	type plain Deployment
	aux := struct {
		*plain
		Created lenientTime `json:"Created"`
	}{plain: (*plain)(d)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	d.Created = aux.Created.Time
	return nil
}

// TaskState is the state of an Octopus server task, as the API spells it.
type TaskState string

// The task states the Octopus API documents.
const (
	TaskQueued     TaskState = "Queued"
	TaskExecuting  TaskState = "Executing"
	TaskFailed     TaskState = "Failed"
	TaskCanceled   TaskState = "Canceled"
	TaskTimedOut   TaskState = "TimedOut"
	TaskSuccess    TaskState = "Success"
	TaskCancelling TaskState = "Cancelling"
)

// Task is an Octopus server task, such as the one that runs a deployment.
type Task struct {
	ID                      string    `json:"Id"`
	Name                    string    `json:"Name"`
	Description             string    `json:"Description"`
	State                   TaskState `json:"State"`
	IsCompleted             bool      `json:"IsCompleted"`
	FinishedSuccessfully    bool      `json:"FinishedSuccessfully"`
	HasPendingInterruptions bool      `json:"HasPendingInterruptions"`
	HasWarningsOrErrors     bool      `json:"HasWarningsOrErrors"`
	ErrorMessage            string    `json:"ErrorMessage"`
	Duration                string    `json:"Duration"`
	QueueTime               time.Time `json:"QueueTime"`
	StartTime               time.Time `json:"StartTime"`
	CompletedTime           time.Time `json:"CompletedTime"`
}

// UnmarshalJSON decodes a task, tolerating odd timestamps.
func (t *Task) UnmarshalJSON(b []byte) error {
	type plain Task
	aux := struct {
		*plain
		QueueTime     lenientTime `json:"QueueTime"`
		StartTime     lenientTime `json:"StartTime"`
		CompletedTime lenientTime `json:"CompletedTime"`
	}{plain: (*plain)(t)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	t.QueueTime, t.StartTime, t.CompletedTime = aux.QueueTime.Time, aux.StartTime.Time, aux.CompletedTime.Time
	return nil
}

// TaskDetails is a task with its activity log, from /tasks/{id}/details.
type TaskDetails struct {
	Task         Task          `json:"Task"`
	ActivityLogs []ActivityLog `json:"ActivityLogs"`
	Progress     TaskProgress  `json:"Progress"`
}

// TaskProgress is Octopus's estimate of how far a task has got.
type TaskProgress struct {
	ProgressPercentage     int    `json:"ProgressPercentage"`
	EstimatedTimeRemaining string `json:"EstimatedTimeRemaining"`
}

// ActivityStatus is the status of a node in a task's activity log.
type ActivityStatus string

// The activity statuses the Octopus API documents.
const (
	ActivityPending            ActivityStatus = "Pending"
	ActivityRunning            ActivityStatus = "Running"
	ActivitySuccess            ActivityStatus = "Success"
	ActivityFailed             ActivityStatus = "Failed"
	ActivitySkipped            ActivityStatus = "Skipped"
	ActivitySuccessWithWarning ActivityStatus = "SuccessWithWarning"
	ActivityCanceled           ActivityStatus = "Canceled"
)

// ActivityLog is a node of a task's activity log: the task itself at the
// top, its steps below, and targets and actions below those.
type ActivityLog struct {
	ID                 string         `json:"Id"`
	Name               string         `json:"Name"`
	Status             ActivityStatus `json:"Status"`
	ProgressPercentage int            `json:"ProgressPercentage"`
	ProgressMessage    string         `json:"ProgressMessage"`
	Started            time.Time      `json:"Started"`
	Ended              time.Time      `json:"Ended"`
	Children           []ActivityLog  `json:"Children"`
}

// UnmarshalJSON decodes an activity log node, tolerating odd timestamps.
func (a *ActivityLog) UnmarshalJSON(b []byte) error {
	type plain ActivityLog
	aux := struct {
		*plain
		Started lenientTime `json:"Started"`
		Ended   lenientTime `json:"Ended"`
	}{plain: (*plain)(a)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	a.Started, a.Ended = aux.Started.Time, aux.Ended.Time
	return nil
}

// Dashboard is the deployment overview of /dashboard/dynamic: the latest
// deployment of each project to each environment (one per tenant for
// tenanted projects), with the projects and environments it covers.
type Dashboard struct {
	Items        []DashboardItem `json:"Items"`
	Projects     []DashboardRef  `json:"Projects"`
	Environments []DashboardRef  `json:"Environments"`
}

func (d *Dashboard) validate() error {
	if d.Items == nil {
		return errors.New("no Items")
	}
	return nil
}

// DashboardRef names a project or environment the dashboard covers.
type DashboardRef struct {
	ID   string `json:"Id"`
	Name string `json:"Name"`
}

// DashboardItem is one deployment on the dashboard.
type DashboardItem struct {
	ID                      string    `json:"Id"`
	ProjectID               string    `json:"ProjectId"`
	EnvironmentID           string    `json:"EnvironmentId"`
	TenantID                string    `json:"TenantId"`
	ReleaseID               string    `json:"ReleaseId"`
	ReleaseVersion          string    `json:"ReleaseVersion"`
	DeploymentID            string    `json:"DeploymentId"`
	TaskID                  string    `json:"TaskId"`
	State                   TaskState `json:"State"`
	HasPendingInterruptions bool      `json:"HasPendingInterruptions"`
	HasWarningsOrErrors     bool      `json:"HasWarningsOrErrors"`
	IsCompleted             bool      `json:"IsCompleted"`
	IsCurrent               bool      `json:"IsCurrent"`
	ErrorMessage            string    `json:"ErrorMessage"`
	Duration                string    `json:"Duration"`
	Created                 time.Time `json:"Created"`
	QueueTime               time.Time `json:"QueueTime"`
	StartTime               time.Time `json:"StartTime"`
	CompletedTime           time.Time `json:"CompletedTime"`
}

// UnmarshalJSON decodes a dashboard item, tolerating odd timestamps.
func (it *DashboardItem) UnmarshalJSON(b []byte) error {
	type plain DashboardItem
	aux := struct {
		*plain
		Created       lenientTime `json:"Created"`
		QueueTime     lenientTime `json:"QueueTime"`
		StartTime     lenientTime `json:"StartTime"`
		CompletedTime lenientTime `json:"CompletedTime"`
	}{plain: (*plain)(it)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	it.Created, it.QueueTime = aux.Created.Time, aux.QueueTime.Time
	it.StartTime, it.CompletedTime = aux.StartTime.Time, aux.CompletedTime.Time
	return nil
}

// The interruption types a build lamp cares about; Octopus has others
// (such as PullRequestCompletion), which Interruption.Type passes through.
const (
	InterruptionManualIntervention = "ManualIntervention"
	InterruptionGuidedFailure      = "GuidedFailure"
)

// Interruption is a pause in a task that waits for a person: a manual
// intervention step, or guided failure asking what to do about a failure.
type Interruption struct {
	ID        string    `json:"Id"`
	Title     string    `json:"Title"`
	Type      string    `json:"Type"`
	IsPending bool      `json:"IsPending"`
	TaskID    string    `json:"TaskId"`
	Created   time.Time `json:"Created"`
}

// UnmarshalJSON decodes an interruption, tolerating odd timestamps.
func (in *Interruption) UnmarshalJSON(b []byte) error {
	type plain Interruption
	aux := struct {
		*plain
		Created lenientTime `json:"Created"`
	}{plain: (*plain)(in)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	in.Created = aux.Created.Time
	return nil
}

// collection is an Octopus paged resource collection.
type collection[T any] struct {
	Items        []T `json:"Items"`
	TotalResults int `json:"TotalResults"`
}

func (c *collection[T]) validate() error {
	if c.Items == nil {
		return errors.New("no Items")
	}
	return nil
}

// lenientTime decodes an Octopus timestamp such as
// "2024-08-02T05:07:42.445+00:00"; anything else is the zero time.
type lenientTime struct{ time.Time }

func (t *lenientTime) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) != nil {
		return nil // null, or not a string at all
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if tm, err := time.Parse(layout, s); err == nil {
			t.Time = tm
			return nil
		}
	}
	return nil
}
