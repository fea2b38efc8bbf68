package servo

import (
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/physic"
)

// output is what a driver implements: the hardware side of a servo. The
// shared servo type does the rest (range checks, state, locking, Close
// semantics), so drivers cannot disagree on them. Calls are serialised.
type output interface {
	// pulse starts or updates pulses of width p at the config's frequency.
	pulse(p time.Duration) error
	// stop stops the pulses (the servo goes limp).
	stop() error
	// close frees the hardware; stop has already been called.
	close() error
}

// servo implements Device over an output.
type servo struct {
	name string // driver name, for errors
	cfg  Config // with defaults applied, validated

	mu      sync.Mutex
	out     output
	angle   physic.Angle
	holding bool
	closed  bool
}

func newServo(name string, cfg Config, out output) *servo {
	return &servo{name: name, cfg: cfg, out: out}
}

// checkConfig applies defaults and validates, for constructors.
func checkConfig(cfg Config) (Config, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Config returns the calibration in use, with defaults applied.
func (s *servo) Config() Config { return s.cfg }

func (s *servo) SetAngle(a physic.Angle) error {
	p, err := s.cfg.Pulse(a)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.out.pulse(p); err != nil {
		return fmt.Errorf("servo: %s: set %s (pulse %s): %w", s.name, deg(a), p, err)
	}
	s.angle, s.holding = a, true
	return nil
}

func (s *servo) Angle() (physic.Angle, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.angle, s.holding
}

func (s *servo) Release() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return s.release()
}

func (s *servo) release() error {
	if err := s.out.stop(); err != nil {
		return fmt.Errorf("servo: %s: release: %w", s.name, err)
	}
	s.holding = false
	return nil
}

func (s *servo) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	// Free the hardware even when stopping the pulses failed, and report
	// the first error.
	err := s.release()
	if cerr := s.out.close(); cerr != nil && err == nil {
		err = fmt.Errorf("servo: %s: close: %w", s.name, cerr)
	}
	return err
}
