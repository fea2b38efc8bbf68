// Package octopus reads deployment status from an Octopus Deploy server and
// turns it into a small, safe status model for build lamps and dashboards.
//
// A Client speaks the Octopus REST API with an API key (sent only in the
// X-Octopus-ApiKey header, never logged, never in an error or in the
// client's printed form). It resolves the space, projects and environments
// by name or ID, and reads deployments, tasks, task activity logs, the
// dashboard and pending interruptions. Every call takes a context and has a
// per-request timeout; responses are size-bounded; 401, 403 and 404 are the
// sentinel errors ErrUnauthorized, ErrForbidden and ErrNotFound.
//
// # Status model
//
// Status describes one project in one environment. Its State is derived from
// the Octopus TaskState of the deployment the dashboard shows, and nothing
// else; in particular nothing unrecognised ever becomes Success:
//
//	dashboard item                       State
//	none (never deployed)                Idle
//	none, project not on the dashboard   Unknown, with Err wrapping ErrNotFound
//	Queued                               Queued
//	Executing                            Executing
//	Success                              Success
//	Success + HasWarningsOrErrors        SuccessWithWarnings
//	Failed                               Failed
//	Canceled, Cancelling                 Canceled
//	TimedOut                             TimedOut
//	anything else ("", "Paused", ...)    Unknown, with Err wrapping ErrUnknownState
//
// When several items match, as with one per tenant, the most severe wins, so
// that one failed tenant is never hidden by the others' successes.
//
// HasPendingInterruptions sets Interruption in any state (a manual
// intervention, or guided failure waiting for a decision: the task is still
// Executing then, so check Interruption and InterruptionType). While a
// deployment executes, Step, Activity and Progress come from the task's
// activity log, whatever the deployment process looks like: Step is the
// running child of the task's top node, Activity the deepest running node
// below it. StatusOptions.TestPattern marks steps that are tests (TestPhase).
//
// The mapping is made of pure functions (ParseDashboard, StatusFromDashboard,
// ParseTaskDetails, Status.WithDetails, Status.WithInterruptions) so that it
// can be tested and fuzzed without a server.
//
// # Watching
//
// A Watcher polls any number of targets with one dashboard request per poll,
// fetches a task's activity log only while it executes and its interruptions
// only while one is pending, delivers changes on a channel, re-polls at once
// on Trigger (for webhooks), and backs off on errors while keeping each
// target's last known state, annotated with the error.
//
// The octopustest subpackage is a fake Octopus server with scripted
// timelines, for tests and demos.
package octopus
