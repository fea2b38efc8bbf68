package octopustest

import "time"

// DemoTimeline returns a looping timeline of about three minutes that goes
// through every state a build lamp shows, with the default steps:
//
//	1.3.2  Success (where it starts)
//	1.4.0  Queued → "Deploy web" 30% → "Run smoke tests" 70% → Success
//	1.5.0  Queued → "Deploy web" → "Run smoke tests" fails, guided failure
//	       pending → Failed
//	1.5.1  Queued → "Deploy web" → "Run smoke tests" with warnings →
//	       "Approve release" waiting for a manual intervention →
//	       "Notify team" → Success with warnings
//	1.6.0  Queued → "Deploy web" → Cancelling → Canceled
//	1.6.1  Queued → TimedOut (it never left the queue)
func DemoTimeline(project, environment string) Timeline {
	s := time.Second
	return Timeline{
		Project: project, Environment: environment, Loop: true,
		Phases: []Phase{
			{After: 10 * s, Release: "1.3.2", State: StateSuccess},

			{After: 8 * s, Release: "1.4.0"},
			{After: 3 * s, State: StateExecuting, Step: "Deploy web", Progress: 30},
			{After: 6 * s, State: StateExecuting, Step: "Run smoke tests", Progress: 70},
			{After: 6 * s, State: StateSuccess},

			{After: 10 * s, Release: "1.5.0"},
			{After: 3 * s, State: StateExecuting, Step: "Deploy web", Progress: 30},
			{After: 6 * s, State: StateExecuting, Step: "Run smoke tests", Progress: 60},
			{After: 4 * s, State: StateExecuting, Step: "Run smoke tests", Progress: 60, Warnings: true, Interruption: GuidedFailure},
			{After: 12 * s, State: StateFailed},

			{After: 10 * s, Release: "1.5.1"},
			{After: 3 * s, State: StateExecuting, Step: "Deploy web", Progress: 25},
			{After: 6 * s, State: StateExecuting, Step: "Run smoke tests", Progress: 50, Warnings: true},
			{After: 6 * s, State: StateExecuting, Step: "Approve release", Progress: 75, Interruption: ManualIntervention},
			{After: 12 * s, State: StateExecuting, Step: "Notify team", Progress: 95},
			{After: 3 * s, State: StateSuccess},

			{After: 10 * s, Release: "1.6.0"},
			{After: 3 * s, State: StateExecuting, Step: "Deploy web", Progress: 20},
			{After: 5 * s, State: StateCancelling},
			{After: 2 * s, State: StateCanceled},

			{After: 8 * s, Release: "1.6.1"},
			{After: 8 * s, State: StateTimedOut},
		},
	}
}

// NewDemoServer starts a Server for a build lamp's demo mode: projects
// "Website" and "Billing API", environments "Development", "Staging" and
// "Production", with DemoTimeline playing for Website in Production and a
// shorter loop for Billing API in Staging. Close it when done.
func NewDemoServer(opts Options) *Server {
	s := NewServer(opts)
	s.AddProject("", "Website")
	s.AddProject("", "Billing API")
	for _, e := range []string{"Development", "Staging", "Production"} {
		s.AddEnvironment("", e)
	}
	sec := time.Second
	for _, tl := range []Timeline{
		DemoTimeline("Website", "Production"),
		{
			Project: "Billing API", Environment: "Staging", Loop: true,
			Steps: []string{"Migrate database", "Deploy API", "Run integration tests"},
			Phases: []Phase{
				{After: 15 * sec, Release: "2.0.3", State: StateSuccess},
				{After: 20 * sec, Release: "2.1.0"},
				{After: 2 * sec, State: StateExecuting, Step: "Migrate database", Progress: 20},
				{After: 5 * sec, State: StateExecuting, Step: "Deploy API", Progress: 50},
				{After: 5 * sec, State: StateExecuting, Step: "Run integration tests", Progress: 80},
				{After: 8 * sec, State: StateFailed},
			},
		},
	} {
		if err := s.Play(tl); err != nil {
			panic(err) // the demo data is fixed; this cannot fail
		}
	}
	return s
}
