package octopus

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDashboardStatus feeds arbitrary bytes as a dashboard body. Whatever
// the input, nothing panics, a Success is only ever reported for an item
// whose State is exactly "Success", and Unknown always carries an error.
func FuzzDashboardStatus(f *testing.F) {
	for _, name := range []string{"dashboard-success.json", "dashboard-mixed.json"} {
		f.Add(readTestdata(f, name), "Projects-81", "Environments-2")
	}
	f.Add([]byte(`{"Items":[{"ProjectId":"P","EnvironmentId":"E","State":"success"}]}`), "P", "E")
	f.Add([]byte(`{"Items":[{"ProjectId":"P","EnvironmentId":"E","State":"Success","HasWarningsOrErrors":true},{"ProjectId":"P","EnvironmentId":"E","State":"Failed"}]}`), "P", "E")
	f.Add([]byte(`{"Projects":[{"Id":"X"}],"Items":[]}`), "P", "E")
	f.Add([]byte(`null`), "P", "E")
	f.Fuzz(func(t *testing.T, body []byte, projectID, environmentID string) {
		d, err := ParseDashboard(body)
		if err != nil {
			if d != nil {
				t.Fatal("dashboard returned with an error")
			}
			return
		}
		st := StatusFromDashboard(d, projectID, environmentID)
		if st.State < Unknown || st.State > TimedOut {
			t.Fatalf("state out of range: %d", st.State)
		}
		if st.State == Unknown && st.Err == nil {
			t.Fatal("Unknown without an error")
		}
		if st.State == Success || st.State == SuccessWithWarnings {
			// Every matching item must say exactly "Success"; otherwise a
			// worse state was hidden.
			for _, it := range d.Items {
				if matchesTarget(it, projectID, environmentID) && it.State != TaskSuccess {
					t.Fatalf("%v reported while an item says %q", st.State, it.State)
				}
			}
			if st.State == Success && st.Warnings {
				t.Fatal("Success with warnings flag")
			}
		}
		if st.State == Idle {
			for _, it := range d.Items {
				if matchesTarget(it, projectID, environmentID) {
					t.Fatal("Idle although an item matches")
				}
			}
		}
		// A raw state the client does not know makes the target Unknown,
		// unless another item (another tenant) is worse still: Failed and
		// TimedOut rank above Unknown in the worst-wins order.
		if st.State != Unknown && st.State != Failed && st.State != TimedOut {
			for _, it := range d.Items {
				if matchesTarget(it, projectID, environmentID) && StateOf(it.State, false) == Unknown {
					t.Fatalf("%v reported while an item has unknown state %q", st.State, it.State)
				}
			}
		}
		_ = st.String()
	})
}

func matchesTarget(it DashboardItem, p, e string) bool {
	return bytes.EqualFold([]byte(it.ProjectID), []byte(p)) && bytes.EqualFold([]byte(it.EnvironmentID), []byte(e))
}

// FuzzTaskDetails feeds arbitrary bytes as a task details body: nothing
// panics, the state is never changed by the activity log, progress stays
// within 0–100 and the step is a node of the tree.
func FuzzTaskDetails(f *testing.F) {
	for _, name := range []string{"task-details-executing.json", "task-details-queued.json", "task-details-success.json"} {
		f.Add(readTestdata(f, name))
	}
	f.Add([]byte(`{"ActivityLogs":[{"Children":[{"Name":"a","Status":"Running","ProgressPercentage":-7,"Children":[{"Name":"b","Status":"Running"}]}]}],"Progress":{"ProgressPercentage":900}}`))
	f.Add([]byte(`{"Task":{"Id":"x"},"ActivityLogs":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		td, err := ParseTaskDetails(body)
		if err != nil {
			return
		}
		for _, state := range []State{Unknown, Executing, Success, Failed} {
			in := Status{State: state}
			st := in.WithDetails(td, StatusOptions{})
			if st.State != state {
				t.Fatalf("state changed from %v to %v", state, st.State)
			}
			if st.Progress < 0 || st.Progress > 100 {
				t.Fatalf("progress %d", st.Progress)
			}
			if st.TestPhase && !defaultTestPattern.MatchString(st.Step) {
				t.Fatalf("test phase for step %q", st.Step)
			}
			for _, name := range []string{st.Step, st.Activity} {
				if name != "" && !inTree(td.ActivityLogs, name) {
					t.Fatalf("%q is not in the tree", name)
				}
			}
		}
		// The decoded value encodes again: no impossible values inside.
		if _, err := json.Marshal(td); err != nil {
			t.Fatal(err)
		}
	})
}

func inTree(nodes []ActivityLog, name string) bool {
	for _, n := range nodes {
		if n.Name == name || inTree(n.Children, name) {
			return true
		}
	}
	return false
}
