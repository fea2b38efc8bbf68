package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pikit/pikit/irlamp"
	"github.com/pikit/pikit/octopus"
)

func TestStateOrder(t *testing.T) {
	if len(states) != int(numStates) {
		t.Fatalf("states lists %d states, want %d", len(states), numStates)
	}
	seen := map[state]bool{}
	for i, s := range states {
		if seen[s] {
			t.Fatalf("%s listed twice", s)
		}
		seen[s] = true
		if i > 0 && !worse(states[i-1], s) {
			t.Errorf("%s does not rank above %s", states[i-1], s)
		}
		if keys[s] == "" || titles[s] == "" {
			t.Errorf("state %d has no name", s)
		}
	}
	want := "failed timedout error unknown intervention testing executing queued canceled warnings success idle"
	if got := strings.Join(sortedKeys(), " "); got != want {
		t.Errorf("order %q, want %q", got, want)
	}
	// The order: failed/timed out > executing > queued > success.
	for _, p := range [][2]state{{stFailed, stExecuting}, {stTimedOut, stExecuting}, {stExecuting, stQueued}, {stQueued, stSuccess}} {
		if !worse(p[0], p[1]) {
			t.Errorf("%s should win over %s", p[0], p[1])
		}
	}
	// Never green when something failed or is unknown: success wins only
	// over idle.
	for _, s := range states {
		got, _ := aggregate([]target{{State: stSuccess}, {State: s}})
		if s != stIdle && s != stSuccess && got == stSuccess {
			t.Errorf("success + %s shows success", s)
		}
	}
	var zero target
	if zero.State != stUnknown {
		t.Errorf("zero state is %s, want Unknown", zero.State)
	}
	if got := state(99).String(); got != "Unknown" {
		t.Errorf("state(99) = %q", got)
	}
	if got, at := aggregate(nil); got != stIdle || at != -1 {
		t.Errorf("aggregate(nil) = %s, %d", got, at)
	}
	got, at := aggregate([]target{{State: stSuccess}, {State: stFailed, Name: "a"}, {State: stFailed, Name: "b"}, {State: stExecuting}})
	if got != stFailed || at != 1 {
		t.Errorf("aggregate = %s at %d, want Failed at 1 (the first of equals)", got, at)
	}
}

func TestDefaultColours(t *testing.T) {
	// The palette.
	want := map[state]string{
		stQueued: "WHITE", stExecuting: "BLUE", stTesting: "DARK_BLUE", stSuccess: "GREEN", stWarnings: "PEA_GREEN",
		stFailed: "RED", stTimedOut: "ORANGE", stCanceled: "YELLOW", stIntervention: "PINK", stError: "PURPLE",
		stUnknown: "PURPLE", stIdle: "CYAN",
	}
	for s, c := range want {
		if defaultColours[s] != c {
			t.Errorf("%s: %s, want %s", s, defaultColours[s], c)
		}
	}
	for _, s := range states {
		if c := defaultColours[s]; c != colourOff && !slices.Contains(irlamp.Colors(), c) {
			t.Errorf("%s: %q is no colour of the remote", s, c)
		}
	}
}

func TestParseColours(t *testing.T) {
	c, err := parseColours(" failed=red , Executing=light blue,idle=off,timed_out=dark-yellow,cancelled=BROWN,")
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[state]string{stFailed: "RED", stExecuting: "LIGHT_BLUE", stIdle: colourOff, stTimedOut: "DARK_YELLOW",
		stCanceled: "BROWN", stSuccess: "GREEN", stQueued: "WHITE"} {
		if c[s] != want {
			t.Errorf("%s = %q, want %q", s, c[s], want)
		}
	}
	if c2, err := parseColours(c.String()); err != nil || c2 != c {
		t.Errorf("round trip of %q: %v, %v", c.String(), c2, err)
	}
	if c, err := parseColours(""); err != nil || c != defaultColours {
		t.Errorf("empty: %v %v", c, err)
	}
	for _, tc := range []struct{ in, want string }{
		{"failed", `"failed" is not state=colour`},
		{"fail=RED", `unknown state "fail" (states: unknown, idle, success`},
		{"failed=CRIMSON", `failed: unknown colour "CRIMSON" (colours: RED, GREEN`},
		{"failed=", "failed: no colour given"},
		{"executing=7_FADE", `"7_FADE" is an effect, not a colour`},
		{"failed=RED,failed=PINK", "failed given twice"},
		{"failed=RED,FAILED=PINK", "failed given twice"},
		{"RED=failed", `"RED" is a colour, not a state`},
		{strings.Repeat("x", maxColoursLen+1), "limit"},
	} {
		if _, err := parseColours(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseColours(%.40q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestQuietHours(t *testing.T) {
	at := func(hm string) time.Time {
		tm, err := time.ParseInLocation("15:04", hm, time.Local)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, tc := range []struct {
		spec string
		in   []string
		out  []string
	}{
		{"19:00-07:00", []string{"19:00", "23:59", "00:00", "06:59"}, []string{"18:59", "07:00", "12:00"}},
		{"12:30-13:15", []string{"12:30", "13:00", "13:14"}, []string{"12:29", "13:15", "00:00"}},
		{"0:00-8:00", []string{"00:00", "07:59"}, []string{"08:00", "23:59"}},
	} {
		q, err := parseQuietHours(tc.spec)
		if err != nil {
			t.Fatalf("%s: %v", tc.spec, err)
		}
		for _, hm := range tc.in {
			if !q.contains(at(hm)) {
				t.Errorf("%s does not contain %s", tc.spec, hm)
			}
		}
		for _, hm := range tc.out {
			if q.contains(at(hm)) {
				t.Errorf("%s contains %s", tc.spec, hm)
			}
		}
	}
	if q, err := parseQuietHours(""); err != nil || q.set || q.contains(time.Now()) {
		t.Errorf("empty: %+v %v", q, err)
	}
	for _, bad := range []string{"19:00", "19:00-19:00", "24:00-07:00", "19:60-07:00", "7-8", "19:00-7:0", "+1:00-02:00", "ab:cd-01:00", "19:00-07:00-08:00"} {
		if _, err := parseQuietHours(bad); err == nil || !strings.Contains(err.Error(), "-quiet-hours") {
			t.Errorf("parseQuietHours(%q) = %v", bad, err)
		}
	}
}

func TestStateOfOctopus(t *testing.T) {
	for _, tc := range []struct {
		st   octopus.Status
		want state
	}{
		{octopus.Status{}, stUnknown},
		{octopus.Status{State: octopus.Idle}, stIdle},
		{octopus.Status{State: octopus.Queued}, stQueued},
		{octopus.Status{State: octopus.Executing}, stExecuting},
		{octopus.Status{State: octopus.Executing, TestPhase: true}, stTesting},
		{octopus.Status{State: octopus.Executing, Interruption: true, InterruptionType: octopus.InterruptionManualIntervention}, stIntervention},
		{octopus.Status{State: octopus.Executing, Interruption: true}, stIntervention},
		{octopus.Status{State: octopus.Executing, TestPhase: true, Interruption: true, InterruptionType: octopus.InterruptionGuidedFailure}, stFailed},
		{octopus.Status{State: octopus.Success}, stSuccess},
		{octopus.Status{State: octopus.Success, Interruption: true}, stIntervention},
		{octopus.Status{State: octopus.SuccessWithWarnings}, stWarnings},
		{octopus.Status{State: octopus.Failed}, stFailed},
		{octopus.Status{State: octopus.Failed, Interruption: true}, stFailed},
		{octopus.Status{State: octopus.Canceled}, stCanceled},
		{octopus.Status{State: octopus.TimedOut}, stTimedOut},
		{octopus.Status{State: octopus.Unknown, Interruption: true}, stUnknown},
		{octopus.Status{State: octopus.State(42)}, stUnknown},
	} {
		if got := stateOfOctopus(tc.st); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.st, got, tc.want)
		}
	}
}

func TestTargetOfOctopus(t *testing.T) {
	now := time.Now()
	u := octopus.Update{Target: octopus.Target{Project: "web", Environment: "prod"}, ProjectName: "Website", EnvironmentName: "Production",
		Status: octopus.Status{State: octopus.Success, Release: "1.2.3", Updated: now}}
	tg := targetOfOctopus(u)
	if tg.Name != "Website → Production" || tg.State != stSuccess || !tg.Known || tg.Release != "1.2.3" || tg.Err != "" {
		t.Errorf("fresh: %+v", tg)
	}
	// One or two failed polls keep the last state, annotated.
	u.Failures, u.Status.Err = 2, errors.New("octopus: GET /api/Spaces-1/dashboard/dynamic: no response within 10s")
	tg = targetOfOctopus(u)
	if tg.State != stSuccess || tg.Failures != 2 || !strings.Contains(tg.Err, "no response") {
		t.Errorf("2 failures: %+v", tg)
	}
	u.Failures = 3
	if tg = targetOfOctopus(u); tg.State != stError || !tg.Known {
		t.Errorf("3 failures: %+v", tg)
	}
	// Never read: not known until it has failed 3 times.
	u = octopus.Update{Target: octopus.Target{Project: "web", Environment: "prod"}, Failures: 1, Status: octopus.Status{Err: errors.New("x")}}
	if tg = targetOfOctopus(u); tg.Known || tg.Name != "web → prod" {
		t.Errorf("never read: %+v", tg)
	}
	u.Failures = 3
	if tg = targetOfOctopus(u); !tg.Known || tg.State != stError {
		t.Errorf("never read, 3 failures: %+v", tg)
	}
	// A pending intervention's title is the step when no step is known.
	u = octopus.Update{Status: octopus.Status{State: octopus.Executing, Interruption: true, InterruptionTitle: "Approve release", Updated: now}}
	if tg = targetOfOctopus(u); tg.Step != "Approve release" || tg.State != stIntervention {
		t.Errorf("intervention: %+v", tg)
	}
}

// fakeLamp records commands, for controller tests.
type fakeLamp struct {
	mu   sync.Mutex
	cmds []string
	st   irlamp.State
	err  error
}

func (f *fakeLamp) SetColor(_ context.Context, c string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, c)
	f.st.On, f.st.Color = true, c
	return f.err
}

func (f *fakeLamp) Off(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, colourOff)
	f.st.On = false
	return f.err
}

func (f *fakeLamp) State() irlamp.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeLamp) commands() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.cmds, " ")
}

func TestControllerQuietHoursAndChanges(t *testing.T) {
	var mu sync.Mutex
	clock := time.Date(2026, 11, 23, 18, 58, 0, 0, time.Local)
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return clock
	}
	setClock := func(hm string) {
		mu.Lock()
		defer mu.Unlock()
		tm, _ := time.ParseInLocation("15:04", hm, time.Local)
		clock = time.Date(2026, 11, 23, tm.Hour(), tm.Minute(), 0, 0, time.Local)
	}
	q, _ := parseQuietHours("19:00-07:00")
	lamp := &fakeLamp{}
	var out syncBuffer
	c := newController(lamp, defaultColours, q, make([]target, 2), now, &out, slog.New(slog.DiscardHandler))
	ctx := context.Background()

	// Nothing is sent until every target is known.
	c.set(0, target{Name: "a", State: stSuccess, Known: true})
	c.apply(ctx)
	if got := lamp.commands(); got != "" {
		t.Fatalf("sent %q before every target was read", got)
	}
	c.set(1, target{Name: "b", State: stSuccess, Known: true})
	c.apply(ctx)
	c.apply(ctx) // no change, nothing sent
	c.set(1, target{Name: "b", State: stFailed, Step: "Run tests", Release: "1.2", Known: true})
	c.apply(ctx)
	c.set(0, target{Name: "a", State: stError, Err: "boom", Known: true})
	c.apply(ctx) // Failed still wins
	setClock("19:00")
	c.apply(ctx)
	c.set(1, target{Name: "b", State: stSuccess, Known: true})
	c.apply(ctx) // still quiet
	setClock("07:00")
	c.apply(ctx)
	if got, want := lamp.commands(), "GREEN RED off PURPLE"; got != want {
		t.Errorf("commands %q, want %q", got, want)
	}
	_, v, sent := c.snapshot()
	if v.State != stError || v.Colour != "PURPLE" || sent != "PURPLE" || v.Quiet {
		t.Errorf("view %+v sent %q", v, sent)
	}
	wantOut := []string{
		"18:58:00 Success (a) → GREEN",
		"18:58:00 Failed 'Run tests' (b 1.2) → RED",
		"19:00:00 quiet hours 19:00-07:00 (Failed 'Run tests' (b 1.2)) → off",
		"07:00:00 Error (a: boom) → PURPLE",
	}
	if got := strings.Split(strings.TrimSpace(out.String()), "\n"); !slices.Equal(got, wantOut) {
		t.Errorf("printed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantOut, "\n"))
	}
	// Shutdown switches the lamp off.
	if err := c.shutdown(time.Second); err != nil {
		t.Fatal(err)
	}
	if got := lamp.commands(); !strings.HasSuffix(got, "PURPLE off") {
		t.Errorf("after shutdown: %q", got)
	}
	// A failed send is logged; the colour counts as sent (the Lamp retries).
	lamp.err = errors.New("lircd gone")
	c.set(0, target{Name: "a", State: stQueued, Known: true})
	c.apply(ctx)
	if _, _, sent := c.snapshot(); sent != "WHITE" {
		t.Errorf("sent %q after a failed send", sent)
	}
	if got := c.lamp.State(); got.Color != "WHITE" {
		t.Errorf("lamp state %+v", got)
	}
}

// TestControllerRun checks the loop: updates wake it, quiet hours are
// re-checked on the tick, and it stops with ctx.
func TestControllerRun(t *testing.T) {
	var mu sync.Mutex
	clock := time.Date(2026, 11, 23, 6, 59, 0, 0, time.Local)
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return clock
	}
	q, _ := parseQuietHours("19:00-07:00")
	lamp := &fakeLamp{}
	c := newController(lamp, defaultColours, q, make([]target, 1), now, io.Discard, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.run(ctx, 5*time.Millisecond); close(done) }()
	c.set(0, target{State: stExecuting, Known: true})
	waitFor(t, wait, "the lamp off in quiet hours", func() bool { return lamp.commands() == "off" })
	mu.Lock()
	clock = clock.Add(time.Minute)
	mu.Unlock()
	waitFor(t, wait, "BLUE after quiet hours", func() bool { return lamp.commands() == "off BLUE" })
	cancel()
	<-done
}

// TestControllerShutdownAfterCutShortSend: a send cut short by shutdown
// may have reached the lamp, so shutdown still switches it off.
func TestControllerShutdownAfterCutShortSend(t *testing.T) {
	lamp := &fakeLamp{err: context.Canceled}
	c := newController(lamp, defaultColours, quietHours{}, make([]target, 1), time.Now, io.Discard, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.set(0, target{State: stFailed, Known: true})
	c.apply(ctx)
	lamp.err = nil
	if err := c.shutdown(time.Second); err != nil {
		t.Fatal(err)
	}
	if got := lamp.commands(); got != "RED off" {
		t.Errorf("commands %q, want RED off", got)
	}
	// Never switched on: nothing to switch off.
	lamp2 := &fakeLamp{}
	c2 := newController(lamp2, defaultColours, quietHours{}, make([]target, 1), time.Now, io.Discard, slog.New(slog.DiscardHandler))
	if err := c2.shutdown(time.Second); err != nil || lamp2.commands() != "" {
		t.Errorf("shutdown of an unused lamp: %q %v", lamp2.commands(), err)
	}
}
