package servo

import (
	"fmt"
	"sync"
	"time"

	"github.com/pikit/pikit/internal/devspec"
	"periph.io/x/conn/v3/physic"
)

// DefaultSlewRate is how long the simulated servo takes to turn 60°: an
// SG90's datasheet speed, unloaded at 4.8 V.
const DefaultSlewRate = 100 * time.Millisecond

// SimOptions configures a simulated servo. The zero value is ready to use.
type SimOptions struct {
	// SlewRate is the time the shaft takes to turn 60° (default
	// DefaultSlewRate).
	SlewRate time.Duration
	// Now is the clock (default time.Now). Tests inject a fake clock to
	// inspect the shaft's motion without waiting.
	Now func() time.Time
	// Initial is where the shaft rests before the first command; it must be
	// within the angle range (default: the config's MinAngle).
	Initial *physic.Angle
}

// SimEventKind says what happened to a simulated servo.
type SimEventKind int

// Kinds of SimEvent.
const (
	SimSetAngle SimEventKind = iota + 1 // a pulse width was commanded
	SimRelease                          // pulses stopped
	SimClose                            // the device was closed
)

func (k SimEventKind) String() string {
	switch k {
	case SimSetAngle:
		return "set"
	case SimRelease:
		return "release"
	case SimClose:
		return "close"
	}
	return fmt.Sprintf("SimEventKind(%d)", int(k))
}

// SimEvent is one entry of a simulated servo's timeline.
type SimEvent struct {
	Time  time.Time
	Kind  SimEventKind
	Pulse time.Duration // commanded pulse width; 0 for release and close
	Angle physic.Angle  // angle the pulse commands; for release and close, where the shaft was
}

func (e SimEvent) String() string {
	if e.Kind == SimSetAngle {
		return fmt.Sprintf("%s %s (%s)", e.Kind, deg(e.Angle), e.Pulse)
	}
	return fmt.Sprintf("%s at %s", e.Kind, deg(e.Angle))
}

// Sim is a simulated servo: a model of the pulses it is sent and of a shaft
// that follows them at a finite speed. It keeps a timeline of every command
// for tests to inspect, and can be told to fail.
//
// All methods are safe for concurrent use.
type Sim struct {
	*servo
	m *simModel
}

// NewSim returns a simulated servo with the given calibration.
func NewSim(cfg Config, opts SimOptions) (*Sim, error) {
	cfg, err := checkConfig(cfg)
	if err != nil {
		return nil, err
	}
	if opts.SlewRate < 0 {
		return nil, fmt.Errorf("servo: sim: negative slew rate %s", opts.SlewRate)
	}
	if opts.SlewRate == 0 {
		opts.SlewRate = DefaultSlewRate
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &simModel{cfg: cfg, slew: opts.SlewRate, now: opts.Now, pos: cfg.MinAngle}
	if opts.Initial != nil {
		if _, err := cfg.Pulse(*opts.Initial); err != nil {
			return nil, fmt.Errorf("servo: sim: initial angle: %w", err)
		}
		m.pos = *opts.Initial
	}
	m.posAt = m.now()
	return &Sim{servo: newServo("sim", cfg, m), m: m}, nil
}

// openSim opens "sim" specs: calibration options plus slew (time per 60°).
func openSim(arg string) (Device, error) {
	target, opts, err := devspec.ParseArg(arg, append(configOptions, "slew")...)
	if err != nil {
		return nil, fmt.Errorf("servo: sim: %w", err)
	}
	if target != "" {
		return nil, fmt.Errorf("servo: sim: unexpected argument %q (form: sim[?options])", target)
	}
	var so SimOptions
	if v, ok := opts["slew"]; ok {
		delete(opts, "slew")
		if so.SlewRate, err = time.ParseDuration(v); err != nil || so.SlewRate <= 0 {
			return nil, fmt.Errorf("servo: sim: option slew=%q: want a positive duration such as 100ms", v)
		}
	}
	cfg, err := applyOptions(Config{}, opts)
	if err != nil {
		return nil, err
	}
	return NewSim(cfg, so)
}

func init() {
	registry.MustRegister(devspec.Driver[Device]{Name: "sim", Usage: "sim[?slew=100ms&options]", Open: openSim})
}

// History returns the timeline of commands, oldest first.
func (s *Sim) History() []SimEvent {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return append([]SimEvent(nil), s.m.events...)
}

// Position returns where the modelled shaft is now.
func (s *Sim) Position() physic.Angle {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return s.m.positionAt(s.m.now())
}

// Settled reports whether the shaft has reached the commanded angle (true
// when released: a limp servo does not move by itself).
func (s *Sim) Settled() bool {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return !s.m.pulsing || s.m.positionAt(s.m.now()) == s.m.target
}

// Pulse returns the pulse width being sent, or 0 when the servo is released.
func (s *Sim) Pulse() time.Duration {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if !s.m.pulsing {
		return 0
	}
	return s.m.width
}

// Closed reports whether Close has been called.
func (s *Sim) Closed() bool {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	return s.m.closed
}

// Fail makes the next n hardware operations (SetAngle and Release) fail
// with err, as a disconnected board would; n < 0 fails until Fail(nil, 0)
// clears it. A failed SetAngle changes nothing; a failed Release leaves the
// servo pulsing.
func (s *Sim) Fail(err error, n int) {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.m.fault, s.m.faultN = err, n
	if err == nil {
		s.m.faultN = 0
	}
}

// simModel is the output side of Sim.
type simModel struct {
	cfg  Config
	slew time.Duration
	now  func() time.Time

	mu      sync.Mutex
	events  []SimEvent
	pos     physic.Angle // shaft angle at posAt
	posAt   time.Time
	target  physic.Angle
	width   time.Duration // commanded pulse width
	pulsing bool
	closed  bool
	fault   error
	faultN  int
}

// positionAt moves the shaft from its last known position towards the
// target at the slew rate. Only valid for t >= posAt.
func (m *simModel) positionAt(t time.Time) physic.Angle {
	if !m.pulsing || m.pos == m.target {
		return m.pos
	}
	dt := t.Sub(m.posAt)
	if dt <= 0 {
		return m.pos
	}
	step := physic.Angle(float64(60*physic.Degree) * float64(dt) / float64(m.slew))
	if m.target > m.pos {
		return min(m.pos+step, m.target)
	}
	return max(m.pos-step, m.target)
}

// advance records the shaft's position now, before the target changes.
func (m *simModel) advance() time.Time {
	t := m.now()
	m.pos, m.posAt = m.positionAt(t), t
	return t
}

func (m *simModel) injected() error {
	if m.fault == nil || m.faultN == 0 {
		return nil
	}
	if m.faultN > 0 {
		m.faultN--
	}
	return m.fault
}

func (m *simModel) pulse(p time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.injected(); err != nil {
		return err
	}
	t := m.advance()
	a := m.cfg.AngleOf(p)
	m.target, m.width, m.pulsing = a, p, true
	m.events = append(m.events, SimEvent{Time: t, Kind: SimSetAngle, Pulse: p, Angle: a})
	return nil
}

func (m *simModel) stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.injected(); err != nil {
		return err
	}
	t := m.advance()
	m.pulsing = false
	m.target = m.pos
	m.events = append(m.events, SimEvent{Time: t, Kind: SimRelease, Angle: m.pos})
	return nil
}

func (m *simModel) close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.advance()
	m.closed = true
	m.events = append(m.events, SimEvent{Time: t, Kind: SimClose, Angle: m.pos})
	return nil
}
