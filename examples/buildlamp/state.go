package main

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pikit/pikit/irlamp"
	"github.com/pikit/pikit/octopus"
)

// state is what the lamp shows for one target, and for all of them.
//
// The zero value is stUnknown, so a state nobody set never looks like a
// success.
type state int

const (
	stUnknown      state = iota // a state the lamp does not know, or none read
	stIdle                      // nothing deployed or reported yet
	stSuccess                   // finished without warnings
	stWarnings                  // finished, with warnings
	stCanceled                  // canceled by someone
	stQueued                    // waiting to start
	stExecuting                 // running
	stTesting                   // running a test step
	stIntervention              // waiting for a person: manual intervention, approval
	stError                     // could not be read 3 times in a row
	stTimedOut                  // timed out
	stFailed                    // failed
	numStates
)

// states lists every state from the worst to the best: the order in which
// they win the aggregation, and the order of -colour-test.
var states = []state{stFailed, stTimedOut, stError, stUnknown, stIntervention, stTesting, stExecuting, stQueued, stCanceled, stWarnings, stSuccess, stIdle}

// rank orders the states for the aggregation over all targets: the worst
// (highest) wins. The order is total, and each step of it is deliberate:
//
//   - Failed and TimedOut first: something is broken and the team must act.
//     A failure is more certain than a timeout, which can be a slow agent.
//   - Error (a target could not be read 3 times) and Unknown (a state this
//     program does not recognise) come next, above everything that would
//     look reassuring: what the lamp cannot see may be a failure, so it
//     must never show green, or even blue, over it. They stay below Failed
//     because a failure that is known is the more useful thing to show.
//   - Intervention: a deployment waits for a person; it goes nowhere until
//     someone acts, so it beats work that is merely in progress.
//   - Testing, Executing, Queued: work in progress, the most advanced
//     first, so the lamp follows a release through its stages.
//   - Canceled: finished without success, but on purpose; shown over the
//     successes so that it is noticed, under anything still running.
//   - SuccessWithWarnings, then Success: all is well (a warning on one
//     target is not hidden by a clean success on another).
//   - Idle: nothing deployed or reported; shown only when every target is.
var rank = func() [numStates]int {
	var r [numStates]int
	for i, s := range states {
		r[s] = len(states) - i
	}
	return r
}()

// worse reports whether a should be shown rather than b.
func worse(a, b state) bool { return rank[a.valid()] > rank[b.valid()] }

func (s state) valid() state {
	if s < 0 || s >= numStates {
		return stUnknown
	}
	return s
}

// keys are the state names in -colours, /status and the environment.
var keys = [numStates]string{
	stUnknown:      "unknown",
	stIdle:         "idle",
	stSuccess:      "success",
	stWarnings:     "warnings",
	stCanceled:     "canceled",
	stQueued:       "queued",
	stExecuting:    "executing",
	stTesting:      "testing",
	stIntervention: "intervention",
	stError:        "error",
	stTimedOut:     "timedout",
	stFailed:       "failed",
}

// titles are the state names in the printed log of lamp changes.
var titles = [numStates]string{
	stUnknown:      "Unknown",
	stIdle:         "Idle",
	stSuccess:      "Success",
	stWarnings:     "SuccessWithWarnings",
	stCanceled:     "Canceled",
	stQueued:       "Queued",
	stExecuting:    "Executing",
	stTesting:      "Testing",
	stIntervention: "Intervention",
	stError:        "Error",
	stTimedOut:     "TimedOut",
	stFailed:       "Failed",
}

// Key returns the state's name in -colours and /status, e.g. "timedout".
func (s state) Key() string { return keys[s.valid()] }

// String returns the state's name for people, e.g. "TimedOut".
func (s state) String() string { return titles[s.valid()] }

// keyAliases are other spellings -colours accepts.
var keyAliases = map[string]state{
	"waiting":             stQueued,
	"pending":             stQueued,
	"running":             stExecuting,
	"test":                stTesting,
	"tests":               stTesting,
	"successwithwarnings": stWarnings,
	"warning":             stWarnings,
	"timed_out":           stTimedOut,
	"timeout":             stTimedOut,
	"cancelled":           stCanceled,
	"manual":              stIntervention,
	"manualintervention":  stIntervention,
	"interruption":        stIntervention,
}

// colourOff is the -colours value that switches the lamp off.
const colourOff = "off"

// colours maps each state to a key of the 24-key remote (one of
// irlamp.Colors) or colourOff.
type colours [numStates]string

// defaultColours is the lamp's palette unless -colours says otherwise.
var defaultColours = colours{
	stQueued:       "WHITE",
	stExecuting:    "BLUE",
	stTesting:      "DARK_BLUE",
	stSuccess:      "GREEN",
	stWarnings:     "PEA_GREEN",
	stFailed:       "RED",
	stTimedOut:     "ORANGE",
	stCanceled:     "YELLOW",
	stIntervention: "PINK",
	stError:        "PURPLE",
	stUnknown:      "PURPLE",
	stIdle:         "CYAN",
}

// maxColoursLen bounds the -colours value.
const maxColoursLen = 4096

// parseColours reads -colours: comma-separated state=colour pairs, e.g.
// "failed=RED,executing=light blue,idle=off", over the defaults. State
// keys and colours are case-insensitive; colours may use spaces or hyphens
// for underscores.
func parseColours(s string) (colours, error) {
	c := defaultColours
	if len(s) > maxColoursLen {
		return c, fmt.Errorf("-colours is %d bytes long, limit %d", len(s), maxColoursLen)
	}
	seen := map[state]string{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			return c, fmt.Errorf("-colours: %q is not state=colour (states: %s)", item, strings.Join(keys[:], ", "))
		}
		st, err := parseStateKey(k)
		if err != nil {
			return c, err
		}
		if prev, dup := seen[st]; dup {
			return c, fmt.Errorf("-colours: %s given twice (%q and %q)", st.Key(), prev, item)
		}
		seen[st] = item
		col, err := parseColour(v)
		if err != nil {
			return c, fmt.Errorf("-colours: %s: %w", st.Key(), err)
		}
		c[st] = col
	}
	return c, nil
}

func parseStateKey(k string) (state, error) {
	norm := strings.ToLower(strings.TrimSpace(k))
	norm = strings.NewReplacer(" ", "", "-", "").Replace(norm)
	for i, name := range keys {
		if norm == name {
			return state(i), nil
		}
	}
	if st, ok := keyAliases[norm]; ok {
		return st, nil
	}
	if slices.Contains(irlamp.Colors(), normColour(k)) {
		return 0, fmt.Errorf("-colours: %q is a colour, not a state: write state=colour, e.g. failed=%s", k, normColour(k))
	}
	return 0, fmt.Errorf("-colours: unknown state %q (states: %s)", k, strings.Join(keys[:], ", "))
}

func normColour(v string) string {
	return strings.NewReplacer(" ", "_", "-", "_").Replace(strings.ToUpper(strings.TrimSpace(v)))
}

// parseColour checks a colour name: one of irlamp.Colors or "off".
func parseColour(v string) (string, error) {
	if strings.EqualFold(strings.TrimSpace(v), colourOff) {
		return colourOff, nil
	}
	n := normColour(v)
	if n == "" {
		return "", fmt.Errorf("no colour given (colours: %s, or off)", strings.Join(irlamp.Colors(), ", "))
	}
	if !slices.Contains(irlamp.Colors(), n) {
		if slices.Contains(irlamp.Effects(), n) {
			return "", fmt.Errorf("%q is an effect, not a colour (colours: %s, or off)", v, strings.Join(irlamp.Colors(), ", "))
		}
		return "", fmt.Errorf("unknown colour %q (colours: %s, or off)", v, strings.Join(irlamp.Colors(), ", "))
	}
	return n, nil
}

// String formats the palette the way parseColours reads it.
func (c colours) String() string {
	parts := make([]string, 0, len(states))
	for _, st := range states {
		parts = append(parts, st.Key()+"="+c[st])
	}
	return strings.Join(parts, ",")
}

// quietHours is a daily period, in local time, in which the lamp is off.
// It may wrap midnight (19:00-07:00). The zero value is no quiet hours.
type quietHours struct {
	set        bool
	start, end int // minutes after midnight
}

// parseQuietHours reads HH:MM-HH:MM; "" means none.
func parseQuietHours(s string) (quietHours, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return quietHours{}, nil
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return quietHours{}, fmt.Errorf("-quiet-hours %q: want HH:MM-HH:MM, e.g. 19:00-07:00", s)
	}
	start, err := parseClock(a)
	if err != nil {
		return quietHours{}, fmt.Errorf("-quiet-hours %q: %v", s, err)
	}
	end, err := parseClock(b)
	if err != nil {
		return quietHours{}, fmt.Errorf("-quiet-hours %q: %v", s, err)
	}
	if start == end {
		return quietHours{}, fmt.Errorf("-quiet-hours %q: start and end are the same time", s)
	}
	return quietHours{set: true, start: start, end: end}, nil
}

func parseClock(s string) (int, error) {
	s = strings.TrimSpace(s)
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) < 1 || len(h) > 2 || len(m) != 2 {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 || h[0] == '+' || h[0] == '-' || m[0] == '+' || m[0] == '-' {
		return 0, fmt.Errorf("%q is not a time of day from 00:00 to 23:59", s)
	}
	return hh*60 + mm, nil
}

// contains reports whether t (in its own location) is within the quiet
// hours: from start inclusive to end exclusive.
func (q quietHours) contains(t time.Time) bool {
	if !q.set {
		return false
	}
	m := t.Hour()*60 + t.Minute()
	if q.start < q.end {
		return m >= q.start && m < q.end
	}
	return m >= q.start || m < q.end
}

func (q quietHours) String() string {
	if !q.set {
		return "none"
	}
	return fmt.Sprintf("%02d:%02d-%02d:%02d", q.start/60, q.start%60, q.end/60, q.end%60)
}

// failThreshold is the number of consecutive failed polls of a target after
// which it shows as stError. Fewer keep its last known state: one blip does
// not change the lamp.
const failThreshold = 3

// target is the latest known state of one watched thing.
type target struct {
	Name    string // "Website → Production", "octo/repo@main"
	Source  string // "octopus" or "github"
	State   state
	Release string // release version or commit SHA
	Step    string // running step, check or context
	Err     string // why the state is stale, unknown or an error
	// Failures counts consecutive polls that could not read the state.
	Failures int
	// Known is set once the target has been read, or has failed often
	// enough to be an error: the lamp waits for every target to be known.
	Known   bool
	Updated time.Time
}

// describe says which target caused a lamp state, for the printed log.
func (t target) describe() string {
	var b strings.Builder
	if t.Step != "" {
		fmt.Fprintf(&b, "'%s' ", t.Step)
	}
	b.WriteString("(" + t.Name)
	if t.Release != "" {
		b.WriteString(" " + t.Release)
	}
	if t.State == stError || t.State == stUnknown {
		if t.Err != "" {
			b.WriteString(": " + t.Err)
		}
	}
	b.WriteString(")")
	return b.String()
}

// aggregate returns the worst state of the targets and the index of the
// target that has it (the first of equals), or -1 for no targets.
func aggregate(ts []target) (state, int) {
	best, at := stIdle, -1
	for i, t := range ts {
		if at < 0 || worse(t.State, best) {
			best, at = t.State, i
		}
	}
	return best, at
}

// stateOfOctopus maps an Octopus status onto the lamp's states.
//
// A pending guided failure is Failed: a step has failed and the deployment
// waits for someone to retry, ignore or abort it; the lamp says what
// happened. A pending manual intervention is Intervention, in whatever
// state ranks lower (Octopus reports the task as Executing meanwhile).
func stateOfOctopus(s octopus.Status) state {
	var st state
	switch s.State {
	case octopus.Idle:
		st = stIdle
	case octopus.Queued:
		st = stQueued
	case octopus.Executing:
		st = stExecuting
		if s.TestPhase {
			st = stTesting
		}
	case octopus.Success:
		st = stSuccess
	case octopus.SuccessWithWarnings:
		st = stWarnings
	case octopus.Failed:
		st = stFailed
	case octopus.Canceled:
		st = stCanceled
	case octopus.TimedOut:
		st = stTimedOut
	default:
		st = stUnknown
	}
	if s.Interruption {
		in := stIntervention
		if s.InterruptionType == octopus.InterruptionGuidedFailure {
			in = stFailed
		}
		if worse(in, st) {
			st = in
		}
	}
	return st
}

// targetOfOctopus turns a watcher's update into a target.
func targetOfOctopus(u octopus.Update) target {
	t := target{
		Name:     u.Target.String(),
		Source:   "octopus",
		State:    stateOfOctopus(u.Status),
		Release:  u.Status.Release,
		Step:     u.Status.Step,
		Failures: u.Failures,
		Known:    !u.Status.Updated.IsZero() || u.Failures >= failThreshold,
		Updated:  u.Status.Updated,
	}
	if u.ProjectName != "" && u.EnvironmentName != "" {
		t.Name = u.ProjectName + " → " + u.EnvironmentName
	}
	if u.Status.Interruption && u.Status.InterruptionTitle != "" && t.Step == "" {
		t.Step = u.Status.InterruptionTitle
	}
	if u.Status.Err != nil {
		t.Err = u.Status.Err.Error()
	}
	if u.Failures >= failThreshold {
		t.State = stError
	}
	return t
}

// testPattern marks steps, checks and status contexts that are tests.
var testPattern = regexp.MustCompile(`(?i)test`)

// sortedKeys returns the state keys in rank order, for help texts.
func sortedKeys() []string {
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = s.Key()
	}
	return out
}

// errNothingToWatch is the usage error when no target is configured.
var errNothingToWatch = errors.New("nothing to watch: give -octopus-url with -project and -environment, and/or -github-repo (or try -demo)")

// uniq removes repeated values, keeping the first.
func uniq(list []string) []string {
	var out []string
	for _, v := range list {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
