package octopus_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/pikit/pikit/octopus"
	"github.com/pikit/pikit/octopus/octopustest"
)

// Resolve a project and an environment by name and print the latest
// status. A misspelt name is an error that suggests the right one.
func ExampleClient_Status() {
	srv := octopustest.NewServer(octopustest.Options{})
	defer srv.Close()
	srv.AddProject("", "Website")
	srv.AddEnvironment("", "Production")
	if err := srv.Apply("Website", "Production", octopustest.Phase{Release: "2.16.0", State: octopustest.StateSuccess}); err != nil {
		log.Fatal(err)
	}

	c, err := octopus.NewClient(srv.URL, octopustest.DefaultAPIKey, octopus.ClientOptions{})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	p, err := c.Project(ctx, "website") // names match ignoring case
	if err != nil {
		log.Fatal(err)
	}
	e, err := c.Environment(ctx, "Production")
	if err != nil {
		log.Fatal(err)
	}
	st, err := c.Status(ctx, p.ID, e.ID, octopus.StatusOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (%s) in %s: %s\n", p.Name, p.ID, e.Name, st)

	_, err = c.Project(ctx, "Webiste")
	fmt.Println(err)
	// Output:
	// Website (Projects-1) in Production: Success 2.16.0
	// octopus: project "Webiste" not found in space "Default"; did you mean "Website"?
}

// Step through a scripted deployment with the fake server, polling after
// each phase. The step names come from the activity log; "Run smoke tests"
// matches the default test pattern.
func ExampleWatcher_Poll() {
	srv := octopustest.NewServer(octopustest.Options{})
	defer srv.Close()
	srv.AddProject("", "Website")
	srv.AddEnvironment("", "Production")
	err := srv.Play(octopustest.Timeline{
		Project: "Website", Environment: "Production",
		Phases: []octopustest.Phase{
			{Release: "1.4.0"},
			{State: octopustest.StateExecuting, Step: "Deploy web", Progress: 30},
			{State: octopustest.StateExecuting, Step: "Run smoke tests", Progress: 70},
			{State: octopustest.StateSuccess},
			{Release: "1.5.0", State: octopustest.StateExecuting, Step: "Run smoke tests", Progress: 60,
				Warnings: true, Interruption: octopustest.GuidedFailure},
			{State: octopustest.StateFailed},
		},
	})
	if err != nil {
		log.Fatal(err)
	}

	c, err := octopus.NewClient(srv.URL, octopustest.DefaultAPIKey, octopus.ClientOptions{})
	if err != nil {
		log.Fatal(err)
	}
	w, err := octopus.NewWatcher(c, []octopus.Target{{Project: "Website", Environment: "Production"}}, octopus.WatchOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for range 6 {
		if err := w.Poll(context.Background()); err != nil {
			log.Fatal(err)
		}
		fmt.Println(w.Snapshot()[0].Status)
		srv.Advance()
	}
	// Output:
	// Queued 1.4.0
	// Executing 1.4.0 "Step 1: Deploy web" on "web01" 30%
	// Executing 1.4.0 "Step 2: Run smoke tests" on "web01" 70% testing
	// Success 1.4.0
	// Executing 1.5.0 "Step 2: Run smoke tests" 60% testing waiting:GuidedFailure warnings
	// Failed 1.5.0 warnings
}

// colour is what a build lamp might show for an update: an error colour
// only after several failed polls, the last known state before that, and
// never green for anything but a success.
func colour(u octopus.Update) string {
	st := u.Status
	switch {
	case u.Failures >= 3:
		return "purple"
	case st.Interruption:
		return "flashing orange"
	case st.State == octopus.Success:
		return "green"
	case st.State == octopus.SuccessWithWarnings:
		return "yellow-green"
	case st.State == octopus.Queued, st.State == octopus.Executing:
		if st.TestPhase {
			return "pulsing cyan"
		}
		return "pulsing blue"
	case st.State == octopus.Idle:
		return "white"
	case st.State == octopus.Unknown:
		return "purple"
	}
	return "red" // Failed, Canceled, TimedOut
}

// Run polls in the background and delivers changes; Trigger, called for
// example from an Octopus webhook, makes a change show at once instead of
// at the next interval.
func ExampleWatcher_Run() {
	srv := octopustest.NewServer(octopustest.Options{})
	defer srv.Close()
	srv.AddProject("", "Website")
	srv.AddEnvironment("", "Production")
	if err := srv.Apply("Website", "Production", octopustest.Phase{Release: "2.16.0", State: octopustest.StateSuccess}); err != nil {
		log.Fatal(err)
	}
	c, err := octopus.NewClient(srv.URL, octopustest.DefaultAPIKey, octopus.ClientOptions{})
	if err != nil {
		log.Fatal(err)
	}
	w, err := octopus.NewWatcher(c, []octopus.Target{{Project: "Website", Environment: "Production"}},
		octopus.WatchOptions{Interval: time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		if err := w.Run(ctx); err != nil && ctx.Err() == nil {
			log.Fatal(err)
		}
	}()

	u := <-w.Changes()
	fmt.Printf("%s/%s: %s → %s\n", u.ProjectName, u.EnvironmentName, u.Status, colour(u))

	// A deployment fails and Octopus calls the webhook.
	if err := srv.Apply("Website", "Production", octopustest.Phase{Release: "2.17.0", State: octopustest.StateFailed}); err != nil {
		log.Fatal(err)
	}
	w.Trigger()
	u = <-w.Changes()
	fmt.Printf("%s/%s: %s → %s\n", u.ProjectName, u.EnvironmentName, u.Status, colour(u))
	// Output:
	// Website/Production: Success 2.16.0 → green
	// Website/Production: Failed 2.17.0 → red
}
