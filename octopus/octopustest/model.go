package octopustest

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Task states, as the Octopus API spells them.
const (
	StateQueued     = "Queued"
	StateExecuting  = "Executing"
	StateSuccess    = "Success"
	StateFailed     = "Failed"
	StateCanceled   = "Canceled"
	StateCancelling = "Cancelling"
	StateTimedOut   = "TimedOut"
)

// Interruption types.
const (
	ManualIntervention = "ManualIntervention"
	GuidedFailure      = "GuidedFailure"
)

// defaultSteps is the deployment process when a Timeline names none.
var defaultSteps = []string{"Deploy web", "Run smoke tests", "Approve release", "Notify team"}

// DefaultSteps returns the deployment process used when a Timeline has no
// Steps: "Deploy web", "Run smoke tests", "Approve release", "Notify team".
func DefaultSteps() []string { return slices.Clone(defaultSteps) }

// Phase is one moment of a deployment's life.
type Phase struct {
	// After is how long after the previous phase this one starts by
	// itself. Zero means it starts only when Advance is called.
	After time.Duration
	// Release, if set, starts a new deployment of this release version
	// (its task Queued unless State says otherwise). The first phase of a
	// target must have one.
	Release string
	// State is the task state from this phase on, as the API spells it
	// (see the State constants); any other string is served as it is, to
	// test clients against states they do not know. Empty keeps the
	// current state.
	State string
	// Step is the name of the step running from this phase on, one of the
	// Timeline's Steps; empty keeps the current step.
	Step string
	// Progress is the task's progress in percent (Success makes it 100).
	Progress int
	// Warnings makes the task report warnings or errors from now on.
	Warnings bool
	// Interruption, if set, makes the task wait for a person:
	// ManualIntervention or GuidedFailure (the step's target fails). A
	// later phase without it resolves the interruption.
	Interruption string
}

// Timeline scripts the deployments of a project to an environment.
type Timeline struct {
	// Project and Environment are names or IDs of ones added to the server.
	Project, Environment string
	// Steps is the deployment process, in order (default DefaultSteps).
	// The activity log shows them as "Step 1: Deploy web" and so on, each
	// running on the target "web01".
	Steps []string
	// Phases are applied in order; Play applies the first at once.
	Phases []Phase
	// Loop starts over after the last phase, after the first phase's
	// After (or at the next Advance if that is zero).
	Loop bool
}

type space struct {
	id, name, slug string
	isDefault      bool
}

type project struct {
	id, spaceID, name, slug, channelID string
}

type environment struct {
	id, spaceID, name, slug string
	sortOrder               int
}

type release struct {
	id, spaceID, projectID, version string
	created                         time.Time
}

type deployment struct {
	id, spaceID string
	project     *project
	env         *environment
	release     *release
	task        *task
	steps       []string
	created     time.Time
}

type task struct {
	id, spaceID string
	dep         *deployment
	state       string
	warnings    bool
	step        int // index of the current (or last) step, -1 before the first
	progress    int
	queued      time.Time
	started     time.Time
	completed   time.Time
	updated     time.Time
}

type interruption struct {
	id, spaceID, typ, title string
	task                    *task
	pending                 bool
	created                 time.Time
	correlation             string
}

type playing struct {
	tl    Timeline
	proj  *project
	env   *environment
	idx   int
	since time.Time
}

func (s *Server) nextID(prefix string) string {
	s.seq[prefix]++
	return fmt.Sprintf("%s-%d", prefix, s.seq[prefix])
}

func slugify(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

func terminal(state string) bool {
	switch state {
	case StateSuccess, StateFailed, StateCanceled, StateTimedOut:
		return true
	}
	return false
}

// AddSpace adds a space that is not the default one and returns its ID.
// It panics if the name is taken.
func (s *Server) AddSpace(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addSpaceLocked(name, false).id
}

func (s *Server) addSpaceLocked(name string, isDefault bool) *space {
	for _, sp := range s.spaces {
		if strings.EqualFold(sp.name, name) {
			panic(fmt.Sprintf("octopustest: space %q exists", name))
		}
	}
	sp := &space{id: s.nextID("Spaces"), name: name, slug: slugify(name), isDefault: isDefault}
	s.spaces = append(s.spaces, sp)
	return sp
}

func (s *Server) spaceByIDLocked(id string) *space {
	for _, sp := range s.spaces {
		if strings.EqualFold(sp.id, id) {
			return sp
		}
	}
	return nil
}

// spaceLocked finds a space by ID or name; "" is the default space.
func (s *Server) spaceLocked(arg string) *space {
	for _, sp := range s.spaces {
		if (arg == "" && sp.isDefault) || (arg != "" && (strings.EqualFold(sp.id, arg) || sp.name == arg)) {
			return sp
		}
	}
	panic(fmt.Sprintf("octopustest: no space %q", arg))
}

// AddProject adds a project to a space (ID or name; "" for the default
// space) and returns its ID. It panics if the space does not exist or the
// name is taken there.
func (s *Server) AddProject(space, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.spaceLocked(space)
	for _, p := range s.projects {
		if p.spaceID == sp.id && strings.EqualFold(p.name, name) {
			panic(fmt.Sprintf("octopustest: project %q exists in %s", name, sp.name))
		}
	}
	p := &project{id: s.nextID("Projects"), spaceID: sp.id, name: name, slug: slugify(name), channelID: s.nextID("Channels")}
	s.projects = append(s.projects, p)
	return p.id
}

// AddEnvironment adds an environment to a space (ID or name; "" for the
// default space) and returns its ID. It panics if the space does not exist
// or the name is taken there.
func (s *Server) AddEnvironment(space, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.spaceLocked(space)
	n := 0
	for _, e := range s.envs {
		if e.spaceID == sp.id {
			if strings.EqualFold(e.name, name) {
				panic(fmt.Sprintf("octopustest: environment %q exists in %s", name, sp.name))
			}
			n++
		}
	}
	e := &environment{id: s.nextID("Environments"), spaceID: sp.id, name: name, slug: slugify(name), sortOrder: n}
	s.envs = append(s.envs, e)
	return e.id
}

// targetLocked finds a project and, in its space, an environment, each by
// ID or exact name.
func (s *Server) targetLocked(projectArg, envArg string) (*project, *environment, error) {
	var p *project
	for _, x := range s.projects {
		if strings.EqualFold(x.id, projectArg) || x.name == projectArg {
			p = x
			break
		}
	}
	if p == nil {
		return nil, nil, fmt.Errorf("octopustest: no project %q", projectArg)
	}
	for _, e := range s.envs {
		if e.spaceID == p.spaceID && (strings.EqualFold(e.id, envArg) || e.name == envArg) {
			return p, e, nil
		}
	}
	return nil, nil, fmt.Errorf("octopustest: no environment %q in the space of %s", envArg, p.name)
}

// Apply applies one phase to a project in an environment at once, outside
// any timeline, with the default deployment process. It is the quickest
// way for a test to set a state.
func (s *Server) Apply(projectName, environment string, p Phase) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	proj, env, err := s.targetLocked(projectName, environment)
	if err != nil {
		return err
	}
	return s.applyLocked(proj, env, defaultSteps, p, s.now())
}

// Play starts a timeline: it checks it, applies its first phase at once
// and replaces any timeline already playing for the same target.
func (s *Server) Play(tl Timeline) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	proj, env, err := s.targetLocked(tl.Project, tl.Environment)
	if err != nil {
		return err
	}
	if len(tl.Phases) == 0 {
		return fmt.Errorf("octopustest: timeline for %s has no phases", tl.Project)
	}
	if len(tl.Steps) == 0 {
		tl.Steps = defaultSteps
	}
	tl.Steps = slices.Clone(tl.Steps)
	tl.Phases = slices.Clone(tl.Phases)
	for i, p := range tl.Phases {
		if p.Step != "" && !slices.Contains(tl.Steps, p.Step) {
			return fmt.Errorf("octopustest: phase %d: step %q is not one of %q", i+1, p.Step, tl.Steps)
		}
	}
	if tl.Phases[0].Release == "" && s.latestLocked(proj, env) == nil {
		return fmt.Errorf("octopustest: the first phase for %s needs a Release", tl.Project)
	}
	now := s.now()
	if err := s.applyLocked(proj, env, tl.Steps, tl.Phases[0], now); err != nil {
		return err
	}
	pl := &playing{tl: tl, proj: proj, env: env, since: now}
	s.playing = slices.DeleteFunc(s.playing, func(x *playing) bool { return x.proj == proj && x.env == env })
	s.playing = append(s.playing, pl)
	return nil
}

// Advance moves every playing timeline to its next phase, whatever the
// phases' After. Timelines at their end stay there unless they loop.
func (s *Server) Advance() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, pl := range s.playing {
		next := pl.idx + 1
		if next == len(pl.tl.Phases) {
			if !pl.tl.Loop {
				continue
			}
			next = 0
		}
		// Phases were checked by Play; an error here cannot happen.
		_ = s.applyLocked(pl.proj, pl.env, pl.tl.Steps, pl.tl.Phases[next], now)
		pl.idx, pl.since = next, now
	}
}

// tickLocked applies the phases whose time has come.
func (s *Server) tickLocked(now time.Time) {
	for _, pl := range s.playing {
		// Bounded, so that a clock that jumped far ahead (a laptop waking
		// up) replays at most a couple of rounds.
		for range 2*len(pl.tl.Phases) + 1 {
			next := pl.idx + 1
			if next == len(pl.tl.Phases) {
				if !pl.tl.Loop {
					break
				}
				next = 0
			}
			p := pl.tl.Phases[next]
			if p.After <= 0 || now.Sub(pl.since) < p.After {
				break
			}
			at := pl.since.Add(p.After)
			_ = s.applyLocked(pl.proj, pl.env, pl.tl.Steps, p, at)
			pl.idx, pl.since = next, at
		}
	}
}

func (s *Server) latestLocked(p *project, e *environment) *deployment {
	for i := len(s.deployments) - 1; i >= 0; i-- {
		if d := s.deployments[i]; d.project == p && d.env == e {
			return d
		}
	}
	return nil
}

func (s *Server) releaseLocked(p *project, version string, now time.Time) *release {
	for _, r := range s.releases {
		if r.projectID == p.id && r.version == version {
			return r
		}
	}
	r := &release{id: s.nextID("Releases"), spaceID: p.spaceID, projectID: p.id, version: version, created: now}
	s.releases = append(s.releases, r)
	return r
}

func (s *Server) applyLocked(p *project, e *environment, steps []string, ph Phase, now time.Time) error {
	d := s.latestLocked(p, e)
	if ph.Release != "" {
		d = &deployment{
			id: s.nextID("Deployments"), spaceID: p.spaceID, project: p, env: e,
			release: s.releaseLocked(p, ph.Release, now), steps: slices.Clone(steps), created: now,
		}
		d.task = &task{id: s.nextID("ServerTasks"), spaceID: p.spaceID, dep: d, state: StateQueued, step: -1, queued: now}
		s.deployments = append(s.deployments, d)
		s.tasks = append(s.tasks, d.task)
	}
	if d == nil {
		return fmt.Errorf("octopustest: %s has never been deployed to %s: the phase needs a Release", p.name, e.name)
	}
	t := d.task
	if ph.Step != "" {
		i := slices.Index(d.steps, ph.Step)
		if i < 0 {
			return fmt.Errorf("octopustest: step %q is not one of %q", ph.Step, d.steps)
		}
		t.step = i
	}
	if ph.State != "" {
		t.state = ph.State
	}
	t.updated = now
	if ph.Warnings {
		t.warnings = true
	}
	t.progress = min(max(ph.Progress, 0), 100)
	switch {
	case t.state == StateSuccess:
		t.progress = 100
		fallthrough
	case terminal(t.state):
		if t.started.IsZero() && t.state != StateTimedOut {
			t.started = now
		}
		t.completed = now
	case t.state == StateExecuting || t.state == StateCancelling:
		if t.started.IsZero() {
			t.started = now
		}
		t.completed = time.Time{}
	}

	// Interruptions: keep or open the one asked for, resolve the others.
	open := false
	for _, in := range s.interruptions {
		if in.task != t || !in.pending {
			continue
		}
		if in.typ == ph.Interruption && !terminal(t.state) {
			open = true
		} else {
			in.pending = false
		}
	}
	if ph.Interruption != "" && !open && !terminal(t.state) {
		in := &interruption{
			id: s.nextID("Interruptions"), spaceID: t.spaceID, typ: ph.Interruption, task: t,
			pending: true, created: now,
			correlation: fmt.Sprintf("%s_PIKIT%05d/%032x", t.id, s.seq["Interruptions"], s.seq["Interruptions"]),
		}
		switch ph.Interruption {
		case GuidedFailure:
			in.title = fmt.Sprintf("Deploy %s release %s to %s requires failure guidance", p.name, d.release.version, e.name)
		default:
			in.title = "Manual intervention"
			if t.step >= 0 {
				in.title = d.steps[t.step]
			}
		}
		s.interruptions = append(s.interruptions, in)
	}
	return nil
}

func (s *Server) pendingLocked(t *task) []*interruption {
	var out []*interruption
	for _, in := range s.interruptions {
		if in.task == t && in.pending {
			out = append(out, in)
		}
	}
	return out
}
