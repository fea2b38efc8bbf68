package irlamp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultBrightnessLevels is the number of brightness steps a Lamp and a Sim
// assume a 24-key lamp has between dimmest and brightest. Lamps differ; set
// LampOptions.BrightnessLevels to match yours (count the BRIGHT_UP presses
// from dimmest to brightest, plus one).
const DefaultBrightnessLevels = 10

// Defaults of LampOptions.
const (
	DefaultRefreshEvery    = time.Minute
	DefaultRepeats         = 1
	DefaultRetryAfterError = 5 * time.Second
)

// The LED_24_KEY keys that are colours and effects, in table order.
var (
	led24Colors  = []string{"RED", "GREEN", "BLUE", "WHITE", "ORANGE", "PEA_GREEN", "DARK_BLUE", "DARK_YELLOW", "CYAN", "BROWN", "YELLOW", "LIGHT_BLUE", "PINK", "STRAW_YELLOW", "SKY_BLUE", "PURPLE"}
	led24Effects = []string{"7_JUMP", "ALL_FADE", "7_FADE", "3_JUMP"}
)

// Colors returns the colour keys of the 24-key remote, which SetColor takes.
func Colors() []string { return append([]string(nil), led24Colors...) }

// Effects returns the effect keys of the 24-key remote, which SetEffect
// takes: 3_JUMP and 7_JUMP jump between 3 or 7 colours, 7_FADE fades
// between 7 and ALL_FADE through all of them.
func Effects() []string { return append([]string(nil), led24Effects...) }

func isColor(key string) bool  { return contains(led24Colors, key) }
func isEffect(key string) bool { return contains(led24Effects, key) }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// normalize turns "light blue" or "Light-Blue" into the key name LIGHT_BLUE.
func normalize(name string) string {
	return strings.NewReplacer(" ", "_", "-", "_").Replace(strings.ToUpper(strings.TrimSpace(name)))
}

// LampOptions configures a Lamp. The zero value gives the defaults.
type LampOptions struct {
	// RefreshEvery is how often Run re-sends the state the lamp should
	// show, to undo lost codes and hands on the switch (default
	// DefaultRefreshEvery; negative disables).
	RefreshEvery time.Duration
	// Repeats is how many extra copies of each code to send, since IR
	// codes get lost (default DefaultRepeats; negative sends one copy).
	// Brightness steps are always sent once: each copy is a step.
	Repeats int
	// RetryAfterError is how soon Run refreshes after a send failed
	// (default DefaultRetryAfterError; negative waits for the next
	// refresh).
	RetryAfterError time.Duration
	// BrightnessLevels is the lamp's number of brightness steps (default
	// DefaultBrightnessLevels).
	BrightnessLevels int
	// Logger, if set, receives Run's refreshes (debug) and failures (warn).
	Logger *slog.Logger
}

// State is what a Lamp believes the lamp shows, or is working to make it
// show: after a failed send it keeps the intended state, reports the error
// in Err, and Run retries.
type State struct {
	// On is the power; false also before the first command.
	On bool
	// Color is the steady colour last set, "" if none was.
	Color string
	// Effect is the effect last set, "" if none or if a colour was set
	// since.
	Effect string
	// Brightness is the step from 1 to BrightnessLevels, 0 if unknown: it
	// is only known after SetBrightness.
	Brightness int
	// LastKey is the last key sent (or tried), LastSent when that ended.
	LastKey  string
	LastSent time.Time
	// Err is the last send's error, nil once a send succeeds.
	Err error
}

// Lamp controls a 24-key RGB lamp through a Transmitter and remembers what
// it should show. IR has no way back: a code can be lost and a person can
// switch the lamp off, so Run re-sends the whole state now and then, and
// soon after a failed send.
//
// Commands block until their codes are sent; they return the transmitter's
// error, which State also reports. Colour, effect and brightness commands
// first send ON if the lamp is not believed on, since the lamp ignores them
// while off.
//
// All methods are safe for concurrent use; commands and refreshes are
// serialised so that their codes never interleave.
type Lamp struct {
	tx      Transmitter
	r       *Remote
	refresh time.Duration
	retry   time.Duration
	repeats int
	levels  int
	log     *slog.Logger
	ops     chan struct{} // holds a token while a command or refresh runs
	failed  chan struct{} // tells Run that a send failed
	running atomic.Bool

	mu       sync.Mutex
	powerSet bool // On or Off has been sent
	st       State
}

// NewLamp returns a Lamp sending r's keys through tx; r nil means
// LED24Key(). r must have the 24 keys of LED24Key, with their names (a
// lircd.conf for such a lamp usually does). Nothing is sent until the first
// command.
func NewLamp(tx Transmitter, r *Remote, opts LampOptions) (*Lamp, error) {
	if tx == nil {
		return nil, errors.New("irlamp: lamp: nil transmitter")
	}
	if r == nil {
		r = LED24Key()
	}
	var missing []string
	for _, k := range led24Keys {
		if !r.HasKey(k) {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("irlamp: lamp: remote %q lacks keys %s", r.Name(), strings.Join(missing, ", "))
	}
	if opts.BrightnessLevels < 0 || opts.BrightnessLevels > 100 {
		return nil, fmt.Errorf("irlamp: lamp: %d brightness levels, want 1 to 100 (0 for %d)", opts.BrightnessLevels, DefaultBrightnessLevels)
	}
	l := &Lamp{
		tx:      tx,
		r:       r,
		refresh: orDefault(opts.RefreshEvery, DefaultRefreshEvery),
		retry:   orDefault(opts.RetryAfterError, DefaultRetryAfterError),
		repeats: opts.Repeats,
		levels:  opts.BrightnessLevels,
		log:     opts.Logger,
		ops:     make(chan struct{}, 1),
		failed:  make(chan struct{}, 1),
	}
	switch {
	case l.repeats == 0:
		l.repeats = DefaultRepeats
	case l.repeats < 0:
		l.repeats = 0
	case l.repeats > 10:
		return nil, fmt.Errorf("irlamp: lamp: %d repeats, want at most 10", l.repeats)
	}
	if l.levels == 0 {
		l.levels = DefaultBrightnessLevels
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	return l, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// State returns what the lamp is believed to show.
func (l *Lamp) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

// On switches the lamp on.
func (l *Lamp) On(ctx context.Context) error {
	return l.do(ctx, func() error {
		l.believe(func(s *State) { s.On = true })
		return l.send(ctx, "ON", l.repeats)
	})
}

// Off switches the lamp off. It keeps colour, effect and brightness, which
// the lamp shows again after On.
func (l *Lamp) Off(ctx context.Context) error {
	return l.do(ctx, func() error {
		l.believe(func(s *State) { s.On = false })
		return l.send(ctx, "OFF", l.repeats)
	})
}

// SetColor shows a steady colour, ending any effect. color is one of
// Colors, in any case and with spaces or hyphens for underscores ("light
// blue"); another is an error that lists them.
func (l *Lamp) SetColor(ctx context.Context, color string) error {
	key := normalize(color)
	if !isColor(key) {
		return fmt.Errorf("irlamp: unknown color %q (known: %s)", color, strings.Join(led24Colors, ", "))
	}
	return l.do(ctx, func() error {
		if err := l.ensureOn(ctx); err != nil {
			return err
		}
		l.believe(func(s *State) { s.Color, s.Effect = key, "" })
		return l.send(ctx, key, l.repeats)
	})
}

// SetEffect starts an effect, one of Effects (in any case); another is an
// error that lists them.
func (l *Lamp) SetEffect(ctx context.Context, effect string) error {
	key := normalize(effect)
	if !isEffect(key) {
		return fmt.Errorf("irlamp: unknown effect %q (known: %s)", effect, strings.Join(led24Effects, ", "))
	}
	return l.do(ctx, func() error {
		if err := l.ensureOn(ctx); err != nil {
			return err
		}
		l.believe(func(s *State) { s.Effect = key })
		return l.send(ctx, key, l.repeats)
	})
}

// Brighter makes the lamp one step brighter (nothing at the brightest).
func (l *Lamp) Brighter(ctx context.Context) error { return l.step(ctx, "BRIGHT_UP", +1) }

// Dimmer makes the lamp one step dimmer (nothing at the dimmest).
func (l *Lamp) Dimmer(ctx context.Context) error { return l.step(ctx, "BRIGHT_DOWN", -1) }

func (l *Lamp) step(ctx context.Context, key string, dir int) error {
	return l.do(ctx, func() error {
		if err := l.ensureOn(ctx); err != nil {
			return err
		}
		l.believe(func(s *State) {
			if s.Brightness > 0 {
				s.Brightness = min(max(s.Brightness+dir, 1), l.levels)
			}
		})
		return l.send(ctx, key, 0)
	})
}

// SetBrightness sets the brightness step, from 1 (dimmest) to
// BrightnessLevels. The lamp cannot be told a level, only to step, so
// SetBrightness first steps to the nearer end more times than there are
// levels, which reaches that end from anywhere, then steps back to level:
// the lamp may briefly show the end. It takes up to about 1.5 times
// BrightnessLevels codes.
func (l *Lamp) SetBrightness(ctx context.Context, level int) error {
	if level < 1 || level > l.levels {
		return fmt.Errorf("irlamp: brightness %d not within 1 to %d", level, l.levels)
	}
	return l.do(ctx, func() error {
		if err := l.ensureOn(ctx); err != nil {
			return err
		}
		l.believe(func(s *State) { s.Brightness = level })
		return l.stepTo(ctx, level)
	})
}

// stepTo sends the brightness steps of SetBrightness.
func (l *Lamp) stepTo(ctx context.Context, level int) error {
	// levels-1 steps reach an end from anywhere; two spare ones make up for
	// a lost code, and extra steps at an end change nothing.
	toEnd, back, n := "BRIGHT_DOWN", "BRIGHT_UP", level-1
	if level > l.levels/2 {
		toEnd, back, n = "BRIGHT_UP", "BRIGHT_DOWN", l.levels-level
	}
	for range l.levels + 1 {
		if err := l.send(ctx, toEnd, 0); err != nil {
			return err
		}
	}
	for range n {
		if err := l.send(ctx, back, 0); err != nil {
			return err
		}
	}
	return nil
}

// Refresh re-sends the state the lamp should show: ON, the colour, the
// brightness if known and the effect; or OFF. It sends nothing before the
// first command. Run calls it periodically.
func (l *Lamp) Refresh(ctx context.Context) error {
	return l.do(ctx, func() error {
		l.mu.Lock()
		st, powerSet := l.st, l.powerSet
		l.mu.Unlock()
		if !powerSet {
			return nil
		}
		if !st.On {
			return l.send(ctx, "OFF", l.repeats)
		}
		if err := l.send(ctx, "ON", l.repeats); err != nil {
			return err
		}
		if st.Color != "" {
			if err := l.send(ctx, st.Color, l.repeats); err != nil {
				return err
			}
		}
		// Before the effect: on some lamps the brightness keys set an
		// effect's speed.
		if st.Brightness > 0 {
			if err := l.stepTo(ctx, st.Brightness); err != nil {
				return err
			}
		}
		if st.Effect != "" {
			return l.send(ctx, st.Effect, l.repeats)
		}
		return nil
	})
}

// Run refreshes the lamp every RefreshEvery, and RetryAfterError after a
// failed send (of a command or a refresh), until ctx is done; it then
// returns ctx's error. Only one Run may run at a time.
func (l *Lamp) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("irlamp: lamp: Run is already running")
	}
	defer l.running.Store(false)
	var (
		t  *time.Timer
		tc <-chan time.Time
	)
	arm := func(d time.Duration) {
		if t != nil {
			t.Stop()
		}
		if d < 0 {
			t, tc = nil, nil
			return
		}
		t = time.NewTimer(d)
		tc = t.C
	}
	defer arm(-1)
	arm(l.refresh)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.failed:
			if l.retry >= 0 {
				arm(l.retry)
			}
			continue
		case <-tc:
		}
		err := l.Refresh(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		select {
		case <-l.failed: // this refresh's own failure, handled here
		default:
		}
		if err != nil && l.retry >= 0 {
			l.log.Warn("irlamp: refresh failed", "err", err, "retry", l.retry)
			arm(l.retry)
			continue
		}
		if err != nil {
			l.log.Warn("irlamp: refresh failed", "err", err)
		} else {
			l.log.Debug("irlamp: refreshed", "state", l.describe())
		}
		arm(l.refresh)
	}
}

func (l *Lamp) describe() string {
	s := l.State()
	if !s.On {
		return "off"
	}
	d := "on"
	for _, v := range []string{s.Color, s.Effect} {
		if v != "" {
			d += " " + v
		}
	}
	if s.Brightness > 0 {
		d += fmt.Sprintf(" brightness %d/%d", s.Brightness, l.levels)
	}
	return d
}

// do runs one command or refresh, holding the lamp.
func (l *Lamp) do(ctx context.Context, f func() error) error {
	select {
	case l.ops <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-l.ops }()
	return f()
}

func (l *Lamp) believe(f func(*State)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(&l.st)
}

// ensureOn sends ON unless the lamp is believed on.
func (l *Lamp) ensureOn(ctx context.Context) error {
	l.mu.Lock()
	on := l.st.On
	l.mu.Unlock()
	if on {
		return nil
	}
	l.believe(func(s *State) { s.On = true })
	return l.send(ctx, "ON", l.repeats)
}

// send transmits one key and records the outcome.
func (l *Lamp) send(ctx context.Context, key string, repeats int) error {
	err := l.tx.Send(ctx, l.r, key, repeats)
	l.mu.Lock()
	if key == "ON" || key == "OFF" {
		l.powerSet = true
	}
	l.st.LastKey, l.st.LastSent, l.st.Err = key, time.Now(), err
	l.mu.Unlock()
	if err != nil {
		select {
		case l.failed <- struct{}{}:
		default:
		}
	}
	return err
}
