package octopus

import (
	"context"
	"errors"
	"slices"
	"time"
)

// pair is a project and an environment, by ID.
type pair struct{ project, environment string }

// fetchStatuses reads the status of each pair: one dashboard request for
// all of them, then the activity log of each executing task and the
// interruptions of each task with one pending, each fetched once however
// many pairs share the task. The error is the dashboard's; later failures
// are put in the affected Status.Err, keeping from prev (the previous
// statuses, or nil) what could not be refreshed.
func (c *Client) fetchStatuses(ctx context.Context, pairs []pair, prev []Status, opts StatusOptions) ([]Status, error) {
	var projects, envs []string
	for _, p := range pairs {
		if !slices.Contains(projects, p.project) {
			projects = append(projects, p.project)
		}
		if !slices.Contains(envs, p.environment) {
			envs = append(envs, p.environment)
		}
	}
	d, err := c.Dashboard(ctx, projects, envs)
	if err != nil {
		return nil, err
	}
	now := time.Now()

	type detailsResult struct {
		td  *TaskDetails
		err error
	}
	type interruptionsResult struct {
		list []Interruption
		err  error
	}
	details := map[string]detailsResult{}
	interruptions := map[string]interruptionsResult{}

	out := make([]Status, len(pairs))
	for i, p := range pairs {
		st := StatusFromDashboard(d, p.project, p.environment)
		st.Updated = now
		var old Status
		if i < len(prev) {
			old = prev[i]
		}
		sameTask := old.TaskID != "" && old.TaskID == st.TaskID
		if st.State == Executing && st.TaskID != "" {
			r, ok := details[st.TaskID]
			if !ok {
				r.td, r.err = c.TaskDetails(ctx, st.TaskID)
				details[st.TaskID] = r
			}
			if r.err != nil {
				if sameTask {
					st.Step, st.Activity, st.Progress, st.TestPhase = old.Step, old.Activity, old.Progress, old.TestPhase
				}
				st.Err = errors.Join(st.Err, r.err)
			} else {
				st = st.WithDetails(r.td, opts)
			}
		}
		if st.Interruption && st.TaskID != "" {
			r, ok := interruptions[st.TaskID]
			if !ok {
				r.list, r.err = c.Interruptions(ctx, st.TaskID)
				interruptions[st.TaskID] = r
			}
			if r.err != nil {
				if sameTask {
					st.InterruptionType, st.InterruptionTitle = old.InterruptionType, old.InterruptionTitle
				}
				st.Err = errors.Join(st.Err, r.err)
			} else {
				st = st.WithInterruptions(r.list)
			}
		}
		out[i] = st
	}
	return out, nil
}
