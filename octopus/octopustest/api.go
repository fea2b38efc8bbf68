package octopustest

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The JSON shapes below follow the Octopus API: PascalCase property names,
// "Id" rather than "ID", null for absent values, ISO 8601 timestamps with
// an offset, and Links on every resource.

// ts formats a timestamp as Octopus does, or null for the zero time.
func ts(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.Format("2006-01-02T15:04:05.000-07:00")
	return &s
}

func strOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (s *Server) root(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, map[string]any{
		"Application":    "Octopus Deploy",
		"Version":        "2024.3.12741",
		"ApiVersion":     "3.0.0",
		"InstallationId": "6d3f9c4e-8a8e-4b1e-9d7a-5f2b8c1d0e42",
		"Links": map[string]string{
			"Self":   "/api",
			"Spaces": "/api/spaces{/id}{?skip,ids,take,partialName}",
		},
	})
}

type spaceJSON struct {
	ID                       string            `json:"Id"`
	Name                     string            `json:"Name"`
	Slug                     string            `json:"Slug"`
	Description              *string           `json:"Description"`
	IsDefault                bool              `json:"IsDefault"`
	IsPrivate                bool              `json:"IsPrivate"`
	TaskQueueStopped         bool              `json:"TaskQueueStopped"`
	SpaceManagersTeams       []string          `json:"SpaceManagersTeams"`
	SpaceManagersTeamMembers []string          `json:"SpaceManagersTeamMembers"`
	Icon                     *string           `json:"Icon"`
	ExtensionSettings        []any             `json:"ExtensionSettings"`
	Links                    map[string]string `json:"Links"`
}

func spaceRes(sp *space) spaceJSON {
	return spaceJSON{
		ID: sp.id, Name: sp.name, Slug: sp.slug, IsDefault: sp.isDefault,
		SpaceManagersTeams: []string{"teams-spacemanagers-" + sp.id}, SpaceManagersTeamMembers: []string{},
		ExtensionSettings: []any{},
		Links: map[string]string{
			"Self":      "/api/spaces/" + sp.id,
			"SpaceHome": "/api/" + sp.id,
			"Web":       "/app#/spaces/" + sp.id,
		},
	}
}

func (s *Server) spacesAll(*http.Request, *space) response {
	out := []spaceJSON{}
	for _, sp := range s.spaces {
		out = append(out, spaceRes(sp))
	}
	return response{body: out}
}

// collection is an Octopus paged resource collection.
type collection struct {
	ID             *string           `json:"Id"`
	ItemType       string            `json:"ItemType"`
	TotalResults   int               `json:"TotalResults"`
	ItemsPerPage   int               `json:"ItemsPerPage"`
	NumberOfPages  int               `json:"NumberOfPages"`
	LastPageNumber int               `json:"LastPageNumber"`
	Items          any               `json:"Items"`
	LastModifiedBy *string           `json:"LastModifiedBy"`
	LastModifiedOn *string           `json:"LastModifiedOn"`
	Links          map[string]string `json:"Links"`
}

// page cuts items by the skip and take parameters (default take 30) and
// wraps them in a collection.
func page[T any](r *http.Request, itemType, path, template string, items []T) collection {
	q := r.URL.Query()
	skip, _ := strconv.Atoi(q.Get("skip"))
	take, err := strconv.Atoi(q.Get("take"))
	if err != nil || take <= 0 {
		take = 30
	}
	skip = min(max(skip, 0), len(items))
	end := min(skip+take, len(items))
	pages := (len(items) + take - 1) / take
	link := func(skip, take int) string { return fmt.Sprintf("%s?skip=%d&take=%d", path, skip, take) }
	return collection{
		ItemType: itemType, TotalResults: len(items), ItemsPerPage: take,
		NumberOfPages: pages, LastPageNumber: max(pages-1, 0), Items: items[skip:end],
		Links: map[string]string{
			"Self":         link(skip, take),
			"Template":     path + template,
			"Page.All":     link(0, 2147483647),
			"Page.Current": link(skip, take),
			"Page.Last":    link(max(pages-1, 0)*take, take),
		},
	}
}

func (s *Server) spacesPage(r *http.Request, _ *space) response {
	out := []spaceJSON{}
	for _, sp := range s.spaces {
		out = append(out, spaceRes(sp))
	}
	return response{body: page(r, "Space", "/api/spaces", "{?skip,ids,take,partialName}", out)}
}

type projectJSON struct {
	ID                       string            `json:"Id"`
	SpaceID                  string            `json:"SpaceId"`
	Name                     string            `json:"Name"`
	Slug                     string            `json:"Slug"`
	Description              string            `json:"Description"`
	IsDisabled               bool              `json:"IsDisabled"`
	ProjectGroupID           string            `json:"ProjectGroupId"`
	LifecycleID              string            `json:"LifecycleId"`
	DeploymentProcessID      string            `json:"DeploymentProcessId"`
	VariableSetID            string            `json:"VariableSetId"`
	TenantedDeploymentMode   string            `json:"TenantedDeploymentMode"`
	DiscreteChannelRelease   bool              `json:"DiscreteChannelRelease"`
	AutoCreateRelease        bool              `json:"AutoCreateRelease"`
	DefaultGuidedFailureMode string            `json:"DefaultGuidedFailureMode"`
	Links                    map[string]string `json:"Links"`
}

func projectRes(p *project) projectJSON {
	base := "/api/" + p.spaceID + "/projects/" + p.id
	return projectJSON{
		ID: p.id, SpaceID: p.spaceID, Name: p.name, Slug: p.slug,
		ProjectGroupID: "ProjectGroups-1", LifecycleID: "Lifecycles-1",
		DeploymentProcessID: "deploymentprocess-" + p.id, VariableSetID: "variableset-" + p.id,
		TenantedDeploymentMode: "Untenanted", DefaultGuidedFailureMode: "EnvironmentDefault",
		Links: map[string]string{
			"Self":              base,
			"Releases":          base + "/releases{/version}{?skip,take,searchByVersion}",
			"Channels":          base + "/channels{/id}{?skip,take,partialName}",
			"DeploymentProcess": "/api/" + p.spaceID + "/deploymentprocesses/deploymentprocess-" + p.id,
			"Web":               "/app#/" + p.spaceID + "/projects/" + p.id,
		},
	}
}

func (s *Server) projectsAll(_ *http.Request, sp *space) response {
	out := []projectJSON{}
	for _, p := range s.projects {
		if p.spaceID == sp.id {
			out = append(out, projectRes(p))
		}
	}
	return response{body: out}
}

func (s *Server) projectByID(r *http.Request, sp *space) response {
	id := r.PathValue("id")
	for _, p := range s.projects {
		if p.spaceID == sp.id && strings.EqualFold(p.id, id) {
			return response{body: projectRes(p)}
		}
	}
	return notFound(fmt.Sprintf("The resource '%s' was not found.", id))
}

type environmentJSON struct {
	ID                         string            `json:"Id"`
	SpaceID                    string            `json:"SpaceId"`
	Name                       string            `json:"Name"`
	Slug                       string            `json:"Slug"`
	Description                string            `json:"Description"`
	SortOrder                  int               `json:"SortOrder"`
	UseGuidedFailure           bool              `json:"UseGuidedFailure"`
	AllowDynamicInfrastructure bool              `json:"AllowDynamicInfrastructure"`
	ExtensionSettings          []any             `json:"ExtensionSettings"`
	Links                      map[string]string `json:"Links"`
}

func environmentRes(e *environment) environmentJSON {
	base := "/api/" + e.spaceID + "/environments/" + e.id
	return environmentJSON{
		ID: e.id, SpaceID: e.spaceID, Name: e.name, Slug: e.slug, SortOrder: e.sortOrder,
		ExtensionSettings: []any{},
		Links: map[string]string{
			"Self":     base,
			"Machines": base + "/machines{?skip,take,partialName,roles,deploymentId}",
			"Web":      "/app#/" + e.spaceID + "/infrastructure/environments/" + e.id,
		},
	}
}

func (s *Server) environmentsAll(_ *http.Request, sp *space) response {
	out := []environmentJSON{}
	for _, e := range s.envs {
		if e.spaceID == sp.id {
			out = append(out, environmentRes(e))
		}
	}
	return response{body: out}
}

func (s *Server) environmentByID(r *http.Request, sp *space) response {
	id := r.PathValue("id")
	for _, e := range s.envs {
		if e.spaceID == sp.id && strings.EqualFold(e.id, id) {
			return response{body: environmentRes(e)}
		}
	}
	return notFound(fmt.Sprintf("The resource '%s' was not found.", id))
}

type deploymentJSON struct {
	ID                       string            `json:"Id"`
	SpaceID                  string            `json:"SpaceId"`
	ReleaseID                string            `json:"ReleaseId"`
	ChannelID                string            `json:"ChannelId"`
	DeploymentProcessID      string            `json:"DeploymentProcessId"`
	Changes                  []any             `json:"Changes"`
	ChangesMarkdown          *string           `json:"ChangesMarkdown"`
	EnvironmentID            string            `json:"EnvironmentId"`
	TenantID                 *string           `json:"TenantId"`
	ForcePackageDownload     bool              `json:"ForcePackageDownload"`
	ForcePackageRedeployment bool              `json:"ForcePackageRedeployment"`
	Priority                 string            `json:"Priority"`
	SkipActions              []string          `json:"SkipActions"`
	SpecificMachineIDs       []string          `json:"SpecificMachineIds"`
	ExcludedMachineIDs       []string          `json:"ExcludedMachineIds"`
	ManifestVariableSetID    string            `json:"ManifestVariableSetId"`
	TaskID                   string            `json:"TaskId"`
	ProjectID                string            `json:"ProjectId"`
	UseGuidedFailure         bool              `json:"UseGuidedFailure"`
	Comments                 *string           `json:"Comments"`
	FormValues               map[string]any    `json:"FormValues"`
	QueueTime                *string           `json:"QueueTime"`
	QueueTimeExpiry          *string           `json:"QueueTimeExpiry"`
	Name                     string            `json:"Name"`
	Created                  *string           `json:"Created"`
	DeployedBy               string            `json:"DeployedBy"`
	DeployedByID             *string           `json:"DeployedById"`
	FailureEncountered       bool              `json:"FailureEncountered"`
	TentacleRetentionPeriod  any               `json:"TentacleRetentionPeriod"`
	ChangeRequestSettings    any               `json:"ChangeRequestSettings"`
	DeployedToMachineIDs     []string          `json:"DeployedToMachineIds"`
	ExecutionPlanLogContext  map[string]any    `json:"ExecutionPlanLogContext"`
	Links                    map[string]string `json:"Links"`
}

func deploymentRes(d *deployment) deploymentJSON {
	sp := "/api/" + d.spaceID
	return deploymentJSON{
		ID: d.id, SpaceID: d.spaceID, ReleaseID: d.release.id, ChannelID: d.project.channelID,
		DeploymentProcessID: "deploymentprocess-" + d.project.id + "-s-1", Changes: []any{},
		EnvironmentID: d.env.id, Priority: "LifecycleDefault",
		SkipActions: []string{}, SpecificMachineIDs: []string{}, ExcludedMachineIDs: []string{},
		ManifestVariableSetID: "variableset-" + d.id, TaskID: d.task.id, ProjectID: d.project.id,
		UseGuidedFailure: d.env.name == "Production", FormValues: map[string]any{},
		Name: "Deploy to " + d.env.name, Created: ts(d.created), DeployedBy: "pikit-ci",
		DeployedByID:            strOrNil("Users-42"),
		FailureEncountered:      d.task.state == StateFailed || d.task.warnings,
		DeployedToMachineIDs:    []string{"Machines-1"},
		ExecutionPlanLogContext: map[string]any{"Steps": []any{}},
		Links: map[string]string{
			"Self":          sp + "/deployments/" + d.id,
			"Release":       sp + "/releases/" + d.release.id,
			"Environment":   sp + "/environments/" + d.env.id,
			"Project":       sp + "/projects/" + d.project.id,
			"Task":          sp + "/tasks/" + d.task.id,
			"Web":           "/app#/" + d.spaceID + "/deployments/" + d.id,
			"Artifacts":     sp + "/artifacts?regarding=" + d.id,
			"Interruptions": sp + "/interruptions?regarding=" + d.id,
		},
	}
}

func (s *Server) deploymentsList(r *http.Request, sp *space) response {
	q := r.URL.Query()
	projects, envs := splitIDs(q["projects"]), splitIDs(q["environments"])
	out := []deploymentJSON{}
	for i := len(s.deployments) - 1; i >= 0; i-- { // newest first
		d := s.deployments[i]
		if d.spaceID != sp.id ||
			(len(projects) > 0 && !containsFold(projects, d.project.id)) ||
			(len(envs) > 0 && !containsFold(envs, d.env.id)) {
			continue
		}
		out = append(out, deploymentRes(d))
	}
	return response{body: page(r, "Deployment", "/api/"+sp.id+"/deployments",
		"{?skip,take,ids,projects,environments,tenants,channels,taskState,partialName}", out)}
}

type taskJSON struct {
	ID                                     string            `json:"Id"`
	SpaceID                                string            `json:"SpaceId"`
	Name                                   string            `json:"Name"`
	Description                            string            `json:"Description"`
	Arguments                              map[string]any    `json:"Arguments"`
	State                                  string            `json:"State"`
	Completed                              string            `json:"Completed"`
	QueueTime                              *string           `json:"QueueTime"`
	QueueTimeExpiry                        *string           `json:"QueueTimeExpiry"`
	StartTime                              *string           `json:"StartTime"`
	LastUpdatedTime                        *string           `json:"LastUpdatedTime"`
	CompletedTime                          *string           `json:"CompletedTime"`
	ServerNode                             *string           `json:"ServerNode"`
	Duration                               string            `json:"Duration"`
	ErrorMessage                           string            `json:"ErrorMessage"`
	HasBeenPickedUpByProcessor             bool              `json:"HasBeenPickedUpByProcessor"`
	IsCompleted                            bool              `json:"IsCompleted"`
	FinishedSuccessfully                   bool              `json:"FinishedSuccessfully"`
	HasPendingInterruptions                bool              `json:"HasPendingInterruptions"`
	CanRerun                               bool              `json:"CanRerun"`
	HasWarningsOrErrors                    bool              `json:"HasWarningsOrErrors"`
	EstimatedRemainingQueueDurationSeconds int               `json:"EstimatedRemainingQueueDurationSeconds"`
	ProjectID                              string            `json:"ProjectId"`
	LastModifiedBy                         *string           `json:"LastModifiedBy"`
	LastModifiedOn                         *string           `json:"LastModifiedOn"`
	Links                                  map[string]string `json:"Links"`
}

func description(d *deployment) string {
	return fmt.Sprintf("Deploy %s release %s to %s", d.project.name, d.release.version, d.env.name)
}

func errorMessage(state string) string {
	switch state {
	case StateFailed:
		return "The deployment failed because one or more steps failed. Please see the deployment log for details."
	case StateTimedOut:
		return "The task timed out before it could start."
	case StateCanceled:
		return "The task was canceled."
	}
	return ""
}

func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "less than a minute"
	case d < 2*time.Minute:
		return "1 minute"
	case d < time.Hour:
		return fmt.Sprintf("%d minutes", int(d/time.Minute))
	}
	return fmt.Sprintf("%d hours", int(d/time.Hour))
}

func (s *Server) taskRes(t *task) taskJSON {
	d := t.dep
	base := "/api/" + t.spaceID + "/tasks/" + t.id
	end := t.completed
	if end.IsZero() {
		end = s.now()
	}
	dur := ""
	if !t.started.IsZero() {
		dur = humanDuration(end.Sub(t.started))
	}
	completed := ""
	if !t.completed.IsZero() {
		completed = t.completed.Format("Monday, 2 January 2006 3:04:05 PM -07:00")
	}
	node := (*string)(nil)
	if !t.started.IsZero() {
		node = strOrNil("OctopusServerNodes-pikit")
	}
	return taskJSON{
		ID: t.id, SpaceID: t.spaceID, Name: "Deploy", Description: description(d),
		Arguments: map[string]any{"DeploymentId": d.id}, State: t.state, Completed: completed,
		QueueTime: ts(t.queued), StartTime: ts(t.started), LastUpdatedTime: ts(t.updated),
		CompletedTime: ts(t.completed), ServerNode: node, Duration: dur, ErrorMessage: errorMessage(t.state),
		HasBeenPickedUpByProcessor: !t.started.IsZero(), IsCompleted: terminal(t.state),
		FinishedSuccessfully: t.state == StateSuccess, HasPendingInterruptions: len(s.pendingLocked(t)) > 0,
		CanRerun: terminal(t.state), HasWarningsOrErrors: t.warnings, ProjectID: d.project.id,
		Links: map[string]string{
			"Self":           base,
			"Web":            "/app#/" + t.spaceID + "/tasks/" + t.id,
			"Raw":            base + "/raw",
			"Rerun":          "/api/" + t.spaceID + "/tasks/rerun/" + t.id,
			"Cancel":         base + "/cancel",
			"State":          base + "/state",
			"QueuedBehind":   base + "/queued-behind{?skip,take}",
			"Details":        base + "/details{?verbose,tail,ranges}",
			"StatusMessages": base + "/status/messages",
			"Artifacts":      "/api/" + t.spaceID + "/artifacts?regarding=" + t.id,
			"Interruptions":  "/api/" + t.spaceID + "/interruptions?regarding=" + t.id,
		},
	}
}

func (s *Server) findTaskLocked(sp *space, id string) *task {
	for _, t := range s.tasks {
		if t.spaceID == sp.id && strings.EqualFold(t.id, id) {
			return t
		}
	}
	return nil
}

func (s *Server) taskByID(r *http.Request, sp *space) response {
	t := s.findTaskLocked(sp, r.PathValue("id"))
	if t == nil {
		return notFound(fmt.Sprintf("The resource '%s' was not found.", r.PathValue("id")))
	}
	return response{body: s.taskRes(t)}
}

type logElementJSON struct {
	Category    string  `json:"Category"`
	Detail      *string `json:"Detail"`
	MessageText string  `json:"MessageText"`
	OccurredAt  *string `json:"OccurredAt"`
}

type activityJSON struct {
	ID                 string           `json:"Id"`
	Name               string           `json:"Name"`
	Started            *string          `json:"Started"`
	Ended              *string          `json:"Ended"`
	Status             string           `json:"Status"`
	Children           []activityJSON   `json:"Children"`
	ShowAtSummaryLevel bool             `json:"ShowAtSummaryLevel"`
	LogElements        []logElementJSON `json:"LogElements"`
	ProgressPercentage int              `json:"ProgressPercentage"`
	ProgressMessage    *string          `json:"ProgressMessage"`
}

type taskDetailsJSON struct {
	Task            taskJSON          `json:"Task"`
	ActivityLogs    []activityJSON    `json:"ActivityLogs"`
	PhysicalLogSize int               `json:"PhysicalLogSize"`
	Progress        map[string]any    `json:"Progress"`
	ID              string            `json:"Id"`
	LastModifiedBy  *string           `json:"LastModifiedBy"`
	LastModifiedOn  *string           `json:"LastModifiedOn"`
	Links           map[string]string `json:"Links"`
}

// activity builds the activity log tree of a task: the task at the top,
// its steps below ("Step 1: Deploy web"), and the target each step runs on
// below those.
func (s *Server) activity(t *task) []activityJSON {
	d := t.dep
	pending := s.pendingLocked(t)
	guided := false
	for _, in := range pending {
		guided = guided || in.typ == GuidedFailure
	}
	rootStatus := "Pending"
	switch t.state {
	case StateExecuting, StateCancelling:
		rootStatus = "Running"
	case StateSuccess:
		rootStatus = "Success"
		if t.warnings {
			rootStatus = "SuccessWithWarning"
		}
	case StateFailed, StateTimedOut:
		rootStatus = "Failed"
	case StateCanceled:
		rootStatus = "Canceled"
	}
	stepStatus := func(i int) string {
		c := t.step
		switch rootStatus {
		case "Running":
			switch {
			case c < 0 || i > c:
				return "Pending"
			case i < c:
				return "Success"
			}
			return "Running"
		case "Success", "SuccessWithWarning":
			return "Success"
		case "Failed":
			switch {
			case c < 0:
				return "Pending"
			case i < c:
				return "Success"
			case i == c:
				return "Failed"
			}
			return "Skipped"
		case "Canceled":
			switch {
			case c < 0 || i > c:
				return "Pending"
			case i < c:
				return "Success"
			}
			return "Canceled"
		}
		return "Pending"
	}
	timesFor := func(status string) (started, ended *string) {
		switch status {
		case "Pending", "Skipped":
			return nil, nil
		case "Running":
			return ts(t.started), nil
		}
		return ts(t.started), ts(t.updated)
	}
	root := activityJSON{
		ID: t.id, Name: description(d), Status: rootStatus, ShowAtSummaryLevel: true,
		Children: []activityJSON{}, LogElements: []logElementJSON{},
	}
	root.Started, root.Ended = timesFor(rootStatus)
	for i, name := range d.steps {
		st := stepStatus(i)
		target := st
		logs := []logElementJSON{}
		if st == "Running" {
			msg := "Executing " + name
			if guided {
				target = "Failed"
				msg = "The step failed: guided failure is waiting for someone to choose what to do"
			}
			logs = append(logs, logElementJSON{Category: "Info", MessageText: msg, OccurredAt: ts(t.updated)})
		}
		step := activityJSON{
			ID: fmt.Sprintf("%s_STEP%02d", t.id, i+1), Name: fmt.Sprintf("Step %d: %s", i+1, name),
			Status: st, ShowAtSummaryLevel: true, LogElements: logs,
		}
		step.Started, step.Ended = timesFor(st)
		tgt := activityJSON{
			ID: fmt.Sprintf("%s_STEP%02d/web01", t.id, i+1), Name: "web01", Status: target,
			Children: []activityJSON{}, LogElements: []logElementJSON{},
		}
		tgt.Started, tgt.Ended = timesFor(target)
		step.Children = []activityJSON{tgt}
		root.Children = append(root.Children, step)
	}
	return []activityJSON{root}
}

func (s *Server) taskDetails(r *http.Request, sp *space) response {
	t := s.findTaskLocked(sp, r.PathValue("id"))
	if t == nil {
		return notFound(fmt.Sprintf("The resource '%s' was not found.", r.PathValue("id")))
	}
	var remaining any
	if !terminal(t.state) && t.state != StateQueued {
		remaining = "00:01:00"
	}
	return response{body: taskDetailsJSON{
		Task: s.taskRes(t), ActivityLogs: s.activity(t), PhysicalLogSize: 4096 + 512*max(t.step+1, 0),
		Progress: map[string]any{"ProgressPercentage": t.progress, "EstimatedTimeRemaining": remaining},
		ID:       t.id, Links: map[string]string{"Self": "/api/" + t.spaceID + "/tasks/" + t.id + "/details"},
	}}
}

type dashboardItemJSON struct {
	ID                      string            `json:"Id"`
	ProjectID               string            `json:"ProjectId"`
	EnvironmentID           string            `json:"EnvironmentId"`
	ReleaseID               string            `json:"ReleaseId"`
	DeploymentID            string            `json:"DeploymentId"`
	TaskID                  string            `json:"TaskId"`
	TenantID                *string           `json:"TenantId"`
	ChannelID               string            `json:"ChannelId"`
	ReleaseVersion          string            `json:"ReleaseVersion"`
	Created                 *string           `json:"Created"`
	QueueTime               *string           `json:"QueueTime"`
	StartTime               *string           `json:"StartTime"`
	CompletedTime           *string           `json:"CompletedTime"`
	State                   string            `json:"State"`
	HasPendingInterruptions bool              `json:"HasPendingInterruptions"`
	HasWarningsOrErrors     bool              `json:"HasWarningsOrErrors"`
	ErrorMessage            string            `json:"ErrorMessage"`
	Duration                string            `json:"Duration"`
	IsCurrent               bool              `json:"IsCurrent"`
	IsPrevious              bool              `json:"IsPrevious"`
	IsCompleted             bool              `json:"IsCompleted"`
	Links                   map[string]string `json:"Links"`
}

type dashboardProjectJSON struct {
	ID                             string            `json:"Id"`
	Name                           string            `json:"Name"`
	Slug                           string            `json:"Slug"`
	ProjectGroupID                 string            `json:"ProjectGroupId"`
	EnvironmentIDs                 []string          `json:"EnvironmentIds"`
	TenantedDeploymentMode         string            `json:"TenantedDeploymentMode"`
	CanPerformUntenantedDeployment bool              `json:"CanPerformUntenantedDeployment"`
	IsDisabled                     bool              `json:"IsDisabled"`
	Links                          map[string]string `json:"Links"`
}

type refJSON struct {
	ID   string `json:"Id"`
	Name string `json:"Name"`
}

type projectGroupJSON struct {
	ID             string            `json:"Id"`
	Name           string            `json:"Name"`
	EnvironmentIDs []string          `json:"EnvironmentIds"`
	Links          map[string]string `json:"Links"`
}

type dashboardJSON struct {
	Projects      []dashboardProjectJSON `json:"Projects"`
	ProjectGroups []projectGroupJSON     `json:"ProjectGroups"`
	Environments  []refJSON              `json:"Environments"`
	Tenants       []any                  `json:"Tenants"`
	Items         []dashboardItemJSON    `json:"Items"`
	PreviousItems []dashboardItemJSON    `json:"PreviousItems"`
	ProjectLimit  *int                   `json:"ProjectLimit"`
	IsFiltered    bool                   `json:"IsFiltered"`
}

// dashboard serves /dashboard/dynamic. Like the real server it filters by
// ID only: a name in projects or environments matches nothing.
func (s *Server) dashboard(r *http.Request, sp *space) response {
	q := r.URL.Query()
	pf, ef := splitIDs(q["projects"]), splitIDs(q["environments"])
	var envs []*environment
	envIDs := []string{}
	out := dashboardJSON{
		Projects: []dashboardProjectJSON{}, Environments: []refJSON{}, Tenants: []any{},
		Items: []dashboardItemJSON{}, PreviousItems: []dashboardItemJSON{},
		IsFiltered: len(pf) > 0 || len(ef) > 0,
	}
	for _, e := range s.envs {
		if e.spaceID == sp.id && (len(ef) == 0 || containsFold(ef, e.id)) {
			envs = append(envs, e)
			envIDs = append(envIDs, e.id)
			out.Environments = append(out.Environments, refJSON{e.id, e.name})
		}
	}
	for _, p := range s.projects {
		if p.spaceID != sp.id || (len(pf) > 0 && !containsFold(pf, p.id)) {
			continue
		}
		out.Projects = append(out.Projects, dashboardProjectJSON{
			ID: p.id, Name: p.name, Slug: p.slug, ProjectGroupID: "ProjectGroups-1", EnvironmentIDs: envIDs,
			TenantedDeploymentMode: "Untenanted", CanPerformUntenantedDeployment: true,
			Links: map[string]string{"Self": "/api/" + sp.id + "/projects/" + p.id},
		})
		for _, e := range envs {
			d := s.latestLocked(p, e)
			if d == nil {
				continue
			}
			t := d.task
			res := s.taskRes(t)
			out.Items = append(out.Items, dashboardItemJSON{
				ID: d.id, ProjectID: p.id, EnvironmentID: e.id, ReleaseID: d.release.id, DeploymentID: d.id,
				TaskID: t.id, ChannelID: p.channelID, ReleaseVersion: d.release.version, Created: ts(d.created),
				QueueTime: ts(t.queued), StartTime: ts(t.started), CompletedTime: ts(t.completed), State: t.state,
				HasPendingInterruptions: res.HasPendingInterruptions, HasWarningsOrErrors: t.warnings,
				ErrorMessage: res.ErrorMessage, Duration: res.Duration, IsCurrent: true, IsCompleted: terminal(t.state),
				Links: map[string]string{
					"Self":    "/api/" + sp.id + "/deployments/" + d.id,
					"Release": "/api/" + sp.id + "/releases/" + d.release.id,
					"Task":    "/api/" + sp.id + "/tasks/" + t.id,
				},
			})
		}
	}
	if len(out.Projects) > 0 {
		out.ProjectGroups = []projectGroupJSON{{
			ID: "ProjectGroups-1", Name: "Default Project Group", EnvironmentIDs: envIDs,
			Links: map[string]string{"Self": "/api/" + sp.id + "/projectgroups/ProjectGroups-1"},
		}}
	} else {
		out.ProjectGroups = []projectGroupJSON{}
	}
	return response{body: out}
}

type formElementJSON struct {
	Name            string         `json:"Name"`
	Control         map[string]any `json:"Control"`
	IsValueRequired bool           `json:"IsValueRequired"`
}

type interruptionJSON struct {
	ID                          string            `json:"Id"`
	SpaceID                     string            `json:"SpaceId"`
	Title                       string            `json:"Title"`
	Type                        string            `json:"Type"`
	Created                     *string           `json:"Created"`
	IsPending                   bool              `json:"IsPending"`
	Form                        map[string]any    `json:"Form"`
	RelatedDocumentIDs          []string          `json:"RelatedDocumentIds"`
	ResponsibleTeamIDs          []string          `json:"ResponsibleTeamIds"`
	ResponsibleUserID           *string           `json:"ResponsibleUserId"`
	CanTakeResponsibility       bool              `json:"CanTakeResponsibility"`
	HasResponsibility           bool              `json:"HasResponsibility"`
	TaskID                      string            `json:"TaskId"`
	CorrelationID               string            `json:"CorrelationId"`
	IsLinkedToOtherInterruption bool              `json:"IsLinkedToOtherInterruption"`
	Links                       map[string]string `json:"Links"`
}

func interruptionRes(in *interruption) interruptionJSON {
	d := in.task.dep
	button := func(v string, confirm bool) map[string]any {
		return map[string]any{"Text": v, "Value": v, "RequiresConfirmation": confirm}
	}
	instructions := "Please check the release and approve it."
	result, buttons := "Result", []any{button("Proceed", false), button("Abort", true)}
	if in.typ == GuidedFailure {
		step := "the current step"
		if in.task.step >= 0 {
			step = fmt.Sprintf("'%s' on web01", d.steps[in.task.step])
		}
		instructions = step + " in the current task failed. What would you like to do?"
		result, buttons = "Guidance", []any{button("Fail", false), button("Retry", false), button("Ignore", false)}
	}
	base := "/api/" + in.spaceID + "/interruptions/" + in.id
	return interruptionJSON{
		ID: in.id, SpaceID: in.spaceID, Title: in.title, Type: in.typ, Created: ts(in.created), IsPending: in.pending,
		Form: map[string]any{
			"Values": map[string]any{"Instructions": nil, "Notes": nil, result: nil},
			"Elements": []formElementJSON{
				{Name: "Instructions", Control: map[string]any{"Type": "Paragraph", "Text": instructions, "ResolveLinks": false}},
				{Name: "Notes", Control: map[string]any{"Type": "TextArea", "Label": "Notes"}},
				{Name: result, Control: map[string]any{"Type": "SubmitButtonGroup", "Buttons": buttons}, IsValueRequired: in.typ == GuidedFailure},
			},
		},
		RelatedDocumentIDs: []string{d.id, in.task.id, d.project.id, d.env.id},
		ResponsibleTeamIDs: []string{}, CanTakeResponsibility: true,
		TaskID: in.task.id, CorrelationID: in.correlation,
		Links: map[string]string{"Self": base, "Submit": base + "/submit", "Responsible": base + "/responsible"},
	}
}

func (s *Server) interruptionsList(r *http.Request, sp *space) response {
	q := r.URL.Query()
	regarding := q.Get("regarding")
	pendingOnly := strings.EqualFold(q.Get("pendingOnly"), "true")
	out := []interruptionJSON{}
	for i := len(s.interruptions) - 1; i >= 0; i-- {
		in := s.interruptions[i]
		if in.spaceID != sp.id || (pendingOnly && !in.pending) {
			continue
		}
		if regarding != "" {
			d := in.task.dep
			if !containsFold([]string{in.task.id, d.id, d.project.id, d.env.id, d.release.id}, regarding) {
				continue
			}
		}
		out = append(out, interruptionRes(in))
	}
	return response{body: page(r, "Interruption", "/api/"+sp.id+"/interruptions",
		"{?skip,take,regarding,pendingOnly,ids}", out)}
}
