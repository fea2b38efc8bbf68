package main

import (
	"errors"
	"slices"
	"testing"

	"github.com/pikit/pikit/irlamp"
)

// FuzzGitHubStatus maps arbitrary bodies of the combined status and check
// runs endpoints: no panic, malformed bodies are errors, and the result is
// Success only when every status and check run reported success (neutral
// and skipped count for check runs) and all of them were read; anything
// unknown ranks at least as high as Unknown.
func FuzzGitHubStatus(f *testing.F) {
	seeds := [][2]string{
		{`{"state":"pending","sha":"abc","total_count":0,"statuses":[]}`, `{"total_count":0,"check_runs":[]}`},
		{`{"state":"success","sha":"abc","total_count":1,"statuses":[{"state":"success","context":"ci/jenkins","description":"Build #12 succeeded"}]}`,
			`{"total_count":2,"check_runs":[{"name":"build","status":"completed","conclusion":"success","head_sha":"abc"},{"name":"lint","status":"completed","conclusion":"neutral"}]}`},
		{`{"state":"failure","total_count":2,"statuses":[{"state":"failure","context":"a"},{"state":"pending","context":"b"}]}`,
			`{"total_count":1,"check_runs":[{"name":"unit tests","status":"in_progress","conclusion":null}]}`},
		{`{"state":"success","total_count":3,"statuses":[{"state":"success","context":"a"}]}`,
			`{"total_count":5,"check_runs":[{"name":"x","status":"completed","conclusion":"success"}]}`},
		{`{"state":"SUCCESS","total_count":1,"statuses":[{"state":"Success"}]}`, `{"total_count":1,"check_runs":[{"status":"completed","conclusion":"SUCCESS"}]}`},
		{`{"state":"success","total_count":0,"statuses":null}`, `{"total_count":1,"check_runs":[{"status":"waiting"}]}`},
		{`null`, `[]`},
		{`{"state":"success","total_count":-1,"statuses":[]}`, `{"total_count":1e3,"check_runs":[]}`},
		{`{"state":"error","total_count":1,"statuses":[{"state":"error","context":"ci"}]}`,
			`{"total_count":3,"check_runs":[{"status":"completed","conclusion":"timed_out"},{"status":"completed","conclusion":"cancelled"},{"status":"completed","conclusion":"action_required"}]}`},
	}
	for _, s := range seeds {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, statusBody, runsBody []byte) {
		cs, err := parseCombinedStatus(statusBody)
		if err != nil {
			if !errors.Is(err, errGHMalformed) || cs != nil {
				t.Fatalf("status error %v does not wrap errGHMalformed", err)
			}
		} else if cs.State == nil || cs.TotalCount == nil || cs.Statuses == nil || *cs.TotalCount < 0 {
			t.Fatalf("accepted an incomplete combined status: %+v", cs)
		}
		cr, err := parseCheckRuns(runsBody)
		var runs []checkRun
		total := 0
		if err != nil {
			if !errors.Is(err, errGHMalformed) || cr != nil {
				t.Fatalf("check runs error %v does not wrap errGHMalformed", err)
			}
		} else {
			if cr.TotalCount == nil || cr.CheckRuns == nil || *cr.TotalCount < 0 {
				t.Fatalf("accepted incomplete check runs: %+v", cr)
			}
			runs, total = *cr.CheckRuns, *cr.TotalCount
		}
		res := githubState(cs, runs, total)
		if res.State < 0 || res.State >= numStates {
			t.Fatalf("state %d out of range", res.State)
		}

		// What the mapping must conclude, worked out independently.
		reported, allGood, unknown := false, true, false
		if cs != nil {
			for _, s := range *cs.Statuses {
				reported = true
				if s.State != "success" {
					allGood = false
				}
				if !slices.Contains([]string{"success", "failure", "error", "pending"}, s.State) {
					unknown = true
				}
			}
			if *cs.TotalCount > len(*cs.Statuses) {
				reported = true
				if *cs.State != "success" {
					allGood = false
				}
			}
		}
		for _, r := range runs {
			reported = true
			done := r.Status == "completed" && r.Conclusion != nil
			if !done || !slices.Contains([]string{"success", "neutral", "skipped"}, *r.Conclusion) {
				allGood = false
			}
			if !slices.Contains([]string{"completed", "in_progress", "queued", "requested", "pending", "waiting"}, r.Status) ||
				r.Status == "completed" && (r.Conclusion == nil || !slices.Contains([]string{"success", "neutral", "skipped", "failure",
					"startup_failure", "timed_out", "stale", "cancelled", "action_required"}, *r.Conclusion)) {
				unknown = true
			}
		}
		if total > len(runs) {
			reported, allGood, unknown = true, false, true
		}
		switch {
		case res.State == stSuccess && !(reported && allGood):
			t.Fatalf("Success although not everything succeeded: %+v", res)
		case reported && allGood && res.State != stSuccess:
			t.Fatalf("everything succeeded, but %s", res.State)
		case res.State == stIdle && reported:
			t.Fatalf("Idle although something was reported")
		case !reported && res.State != stIdle:
			t.Fatalf("nothing reported, but %s", res.State)
		case unknown && worse(stUnknown, res.State):
			t.Fatalf("an unknown state mapped to %s", res.State)
		case res.State == stUnknown && res.Note == "":
			t.Fatalf("Unknown without a note")
		}
	})
}

// FuzzColours parses arbitrary -colours values: no panic, every state
// gets a colour of the remote or off, and what parses round-trips.
func FuzzColours(f *testing.F) {
	for _, s := range []string{
		"", "failed=RED,executing=BLUE", "failed=red, Executing = light blue ,idle=off", "timed_out=dark-yellow,cancelled=BROWN,",
		"failed", "fail=RED", "failed=", "executing=7_FADE", "failed=RED,failed=PINK", "RED=failed", "=", ",,,", "a=b=c",
		"failed=RED,timedout=ORANGE,error=PURPLE,unknown=PURPLE,intervention=PINK,testing=DARK_BLUE,executing=BLUE,queued=WHITE,canceled=YELLOW,warnings=PEA_GREEN,success=GREEN,idle=CYAN",
	} {
		f.Add(s)
	}
	colours := irlamp.Colors()
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseColours(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		for _, st := range states {
			if c[st] != colourOff && !slices.Contains(colours, c[st]) {
				t.Fatalf("%s got %q", st.Key(), c[st])
			}
		}
		c2, err := parseColours(c.String())
		if err != nil || c2 != c {
			t.Fatalf("round trip of %q: %v, %v", c.String(), c2, err)
		}
	})
}
