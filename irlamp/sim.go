package irlamp

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/pikit/pikit/internal/devspec"
)

// SimOptions configures a simulated lamp. The zero value is ready to use: a
// reliable link and real-time transmissions.
type SimOptions struct {
	// DropRate is the fraction of codes silently lost between the IR LED
	// and the lamp (0 to 1), to exercise a Lamp's refresh.
	DropRate float64
	// Seed seeds the choice of lost codes, for repeatable runs; 0 picks a
	// random seed.
	Seed uint64
	// Instant makes Send return at once instead of taking as long as the
	// signal and the gap after it would (about 108 ms per LED_24_KEY code).
	Instant bool
	// Now is the clock stamping History (default time.Now).
	Now func() time.Time
	// BrightnessLevels is the number of brightness steps the lamp has
	// (default DefaultBrightnessLevels).
	BrightnessLevels int
}

// maxSimHistory bounds History, so that a sim left running (say, the
// fallback of "auto") does not grow without end.
const maxSimHistory = 10000

// SimState is what a simulated lamp shows.
type SimState struct {
	On bool
	// Color is the steady colour, one of Colors; it stays while an effect
	// runs and shows again when a colour key ends the effect.
	Color string
	// Brightness is the step from 1 (dimmest) to the lamp's number of
	// levels (brightest).
	Brightness int
	// Effect is the running effect, one of Effects, or "" for a steady
	// colour.
	Effect string
}

// SimEvent is one code that reached (or failed to reach) a simulated lamp,
// or a hand on its switch.
type SimEvent struct {
	// Time is when the transmission started.
	Time time.Time
	// Duration is how long the IR LED was busy: the signal and the gap
	// after it.
	Duration time.Duration
	// Sent is the key the sender transmitted, for the test's benefit; the
	// lamp only sees the pulses.
	Sent string
	// Dropped reports that the code was lost on the way; the lamp saw
	// nothing and the remaining fields are zero.
	Dropped bool
	// Address and Command are the NEC frame the lamp decoded (see
	// DecodeNEC); Err is set instead when the pulses were no NEC frame.
	Address uint16
	Command uint8
	Err     error
	// Key is the lamp's key the frame means, or "" when it came from
	// another remote (which the lamp ignores) or was not decoded.
	Key string
	// ByHand marks a SwitchOff rather than a code.
	ByHand bool
}

// String describes the event in one line.
func (e SimEvent) String() string {
	switch {
	case e.ByHand:
		return "switched off by hand"
	case e.Dropped:
		return fmt.Sprintf("%s: dropped", e.Sent)
	case e.Err != nil:
		return fmt.Sprintf("%s: not decoded: %v", e.Sent, e.Err)
	case e.Key == "":
		return fmt.Sprintf("%s: address 0x%04X command 0x%02X: another remote's, ignored", e.Sent, e.Address, e.Command)
	}
	return fmt.Sprintf("%s: received %s", e.Sent, e.Key)
}

// Sim is a simulated 24-key RGB lamp behind a simulated IR LED. It
// implements Transmitter: Send computes the remote's pulses as a real
// transmitter would, may lose them (SimOptions.DropRate), and the lamp
// decodes them as an NEC frame; it only obeys frames with LED_24_KEY's
// address, never looking at the key name. Like a real lamp it starts off,
// white and at full brightness, ignores every key but ON while off, and
// remembers its colour, brightness and effect across OFF and ON.
// BRIGHT_UP and BRIGHT_DOWN step the brightness, clamped at both ends, also
// while an effect runs. NEC repeat frames are ignored.
//
// All methods are safe for concurrent use; sends are serialised.
type Sim struct {
	now     func() time.Time
	instant bool
	levels  int
	sending chan struct{} // holds a token while a Send transmits

	mu       sync.Mutex
	rng      *rand.Rand
	drop     float64
	state    SimState
	events   []SimEvent
	received int
	closed   bool
}

// NewSim returns a simulated lamp, off.
func NewSim(opts SimOptions) (*Sim, error) {
	if !validRate(opts.DropRate) {
		return nil, fmt.Errorf("irlamp: sim: drop rate %v not within 0 to 1", opts.DropRate)
	}
	if opts.BrightnessLevels < 0 || opts.BrightnessLevels > 100 {
		return nil, fmt.Errorf("irlamp: sim: %d brightness levels, want 1 to 100 (0 for %d)", opts.BrightnessLevels, DefaultBrightnessLevels)
	}
	if opts.BrightnessLevels == 0 {
		opts.BrightnessLevels = DefaultBrightnessLevels
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &Sim{
		now:     opts.Now,
		instant: opts.Instant,
		levels:  opts.BrightnessLevels,
		sending: make(chan struct{}, 1),
		rng:     rand.New(rand.NewPCG(seed, 0x1a4b)),
		drop:    opts.DropRate,
		state:   SimState{Color: "WHITE", Brightness: opts.BrightnessLevels},
	}, nil
}

func validRate(r float64) bool { return r >= 0 && r <= 1 } // false for NaN

// openSim opens "sim" specs: sim[?drop=0.2&seed=1&instant=true].
func openSim(arg string) (Transmitter, error) {
	target, opts, err := devspec.ParseArg(arg, "drop", "seed", "instant")
	if err != nil {
		return nil, fmt.Errorf("irlamp: sim: %w", err)
	}
	if target != "" {
		return nil, fmt.Errorf("irlamp: sim: unexpected argument %q (form: sim[?drop=0.2&seed=1&instant=true])", target)
	}
	var so SimOptions
	if v, ok := opts["drop"]; ok {
		if so.DropRate, err = strconv.ParseFloat(v, 64); err != nil || !validRate(so.DropRate) {
			return nil, fmt.Errorf("irlamp: sim: option drop=%q: want a fraction from 0 to 1", v)
		}
	}
	if v, ok := opts["seed"]; ok {
		if so.Seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			return nil, fmt.Errorf("irlamp: sim: option seed=%q: want a non-negative integer", v)
		}
	}
	if v, ok := opts["instant"]; ok {
		if so.Instant, err = strconv.ParseBool(v); err != nil {
			return nil, fmt.Errorf("irlamp: sim: option instant=%q: want true or false", v)
		}
	}
	return NewSim(so)
}

func init() {
	registry.MustRegister(devspec.Driver[Transmitter]{Name: "sim", Usage: "sim[?drop=0.2&seed=1&instant=true]", Open: openSim})
}

// Send transmits key of remote r to the simulated lamp, repeats extra
// times. Unless the sim is Instant, each copy takes as long as its signal
// and gap; if ctx ends meanwhile, Send returns its error, and the copy being
// sent has reached the lamp.
func (s *Sim) Send(ctx context.Context, r *Remote, key string, repeats int) error {
	if r == nil {
		return fmt.Errorf("irlamp: sim: nil remote")
	}
	if repeats < 0 {
		return fmt.Errorf("irlamp: sim: negative repeats %d", repeats)
	}
	pulses, err := r.Pulses(key)
	if err != nil {
		return err
	}
	busy := time.Duration(sum(pulses))*time.Microsecond + r.Gap()
	select {
	case s.sending <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.sending }()
	for range repeats + 1 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.transmit(key, pulses, busy); err != nil {
			return err
		}
		if !s.instant {
			t := time.NewTimer(busy)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
	}
	return nil
}

// transmit delivers one copy of a signal to the lamp.
func (s *Sim) transmit(sent string, pulses []uint32, busy time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	ev := SimEvent{Time: s.now(), Duration: busy, Sent: sent}
	if s.drop > 0 && s.rng.Float64() < s.drop {
		ev.Dropped = true
		s.record(ev)
		return nil
	}
	n := 0
	for _, f := range splitFrames(pulses) {
		if isNECRepeat(f) {
			continue
		}
		n++
		e := ev
		e.Address, e.Command, e.Err = DecodeNEC(f)
		if e.Err == nil && e.Address == led24Address && int(e.Command) < len(led24Keys) {
			e.Key = led24Keys[e.Command]
			s.received++
			s.press(e.Key)
		}
		s.record(e)
	}
	if n == 0 {
		ev.Err = errNECRepeat
		s.record(ev)
	}
	return nil
}

func (s *Sim) record(e SimEvent) {
	if len(s.events) == maxSimHistory {
		// Forget the oldest tenth at once, not one event per send.
		n := copy(s.events, s.events[maxSimHistory/10:])
		clear(s.events[n:])
		s.events = s.events[:n]
	}
	s.events = append(s.events, e)
}

// press changes the lamp's state as key does.
func (s *Sim) press(key string) {
	st := &s.state
	switch {
	case key == "ON":
		st.On = true
	case !st.On:
	case key == "OFF":
		st.On = false
	case key == "BRIGHT_UP":
		st.Brightness = min(st.Brightness+1, s.levels)
	case key == "BRIGHT_DOWN":
		st.Brightness = max(st.Brightness-1, 1)
	case isColor(key):
		st.Color, st.Effect = key, ""
	case isEffect(key):
		st.Effect = key
	}
}

// State returns what the lamp shows now.
func (s *Sim) State() SimState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// History returns the codes sent so far, oldest first: one event per copy
// dropped and per frame that arrived. Only the latest events are kept, at
// most 10000.
func (s *Sim) History() []SimEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SimEvent(nil), s.events...)
}

// Received returns how many frames the lamp decoded as its own remote's,
// whether or not they changed what it shows.
func (s *Sim) Received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received
}

// SwitchOff switches the lamp off as a person at the wall switch would: it
// keeps its colour, brightness and effect, and a later ON restores them.
func (s *Sim) SwitchOff() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state.On = false
	s.record(SimEvent{Time: s.now(), ByHand: true})
}

// SetDropRate changes the fraction of codes lost from now on.
func (s *Sim) SetDropRate(rate float64) error {
	if !validRate(rate) {
		return fmt.Errorf("irlamp: sim: drop rate %v not within 0 to 1", rate)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop = rate
	return nil
}

// Close stops the sim: later sends return ErrClosed. The lamp keeps its
// state for inspection. Closing twice is harmless.
func (s *Sim) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
