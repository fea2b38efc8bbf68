package servo

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"periph.io/x/conn/v3/physic"
)

// Config maps angles to pulse widths for one servo. The zero value means the
// defaults: 0.6 ms at 0°, 2.4 ms at 180°, 50 Hz. Those stay clear of an SG90's
// end stops (which most units reach around 0.5 and 2.5 ms), so an
// uncalibrated servo never stalls against them; calibrate MinPulse and
// MaxPulse per unit for the full travel.
type Config struct {
	// MinPulse is the pulse width at MinAngle (default 600µs).
	MinPulse time.Duration
	// MaxPulse is the pulse width at MaxAngle (default 2.4ms).
	MaxPulse time.Duration
	// MinAngle and MaxAngle are the angle range. When both are zero the
	// range is 0° to 180°. MinAngle must be below MaxAngle.
	MinAngle, MaxAngle physic.Angle
	// Reverse maps MinAngle to MaxPulse and MaxAngle to MinPulse, for a
	// servo mounted the other way round.
	Reverse bool
	// Frequency is the PWM frequency (default 50 Hz). Analog servos want
	// 50 Hz; many digital ones accept up to 333 Hz.
	Frequency physic.Frequency
	// AllowWidePulses permits pulses outside 0.5–2.5 ms. Most servos are
	// damaged by driving them far outside that window; set it only for a
	// servo whose datasheet asks for it.
	AllowWidePulses bool
}

// Defaults of Config's zero value.
const (
	DefaultMinPulse  = 600 * time.Microsecond
	DefaultMaxPulse  = 2400 * time.Microsecond
	DefaultMaxAngle  = 180 * physic.Degree
	DefaultFrequency = 50 * physic.Hertz
)

// Limits enforced unless AllowWidePulses is set.
const (
	SafeMinPulse = 500 * time.Microsecond
	SafeMaxPulse = 2500 * time.Microsecond
)

// maxFrequency bounds Frequency: above 1 kHz the period (1 ms) is shorter
// than any servo pulse.
const maxFrequency = 1000 * physic.Hertz

// WithDefaults returns c with zero fields replaced by the defaults.
func (c Config) WithDefaults() Config {
	if c.MinPulse == 0 {
		c.MinPulse = DefaultMinPulse
	}
	if c.MaxPulse == 0 {
		c.MaxPulse = DefaultMaxPulse
	}
	if c.MinAngle == 0 && c.MaxAngle == 0 {
		c.MaxAngle = DefaultMaxAngle
	}
	if c.Frequency == 0 {
		c.Frequency = DefaultFrequency
	}
	return c
}

// Validate checks c (after applying defaults): MinPulse < MaxPulse < period,
// pulses within 0.5–2.5 ms unless AllowWidePulses, MinAngle < MaxAngle, and a
// frequency between 1 Hz and 1 kHz.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.Frequency < physic.Hertz || c.Frequency > maxFrequency:
		return fmt.Errorf("servo: frequency %s outside 1Hz to 1kHz", c.Frequency)
	case c.MinPulse <= 0:
		return fmt.Errorf("servo: minimum pulse %s is not positive", c.MinPulse)
	case c.MinPulse >= c.MaxPulse:
		return fmt.Errorf("servo: minimum pulse %s is not below maximum pulse %s", c.MinPulse, c.MaxPulse)
	case c.MaxPulse >= c.Frequency.Period():
		return fmt.Errorf("servo: maximum pulse %s does not fit in the %s period of %s", c.MaxPulse, c.Frequency.Period(), c.Frequency)
	case !c.AllowWidePulses && (c.MinPulse < SafeMinPulse || c.MaxPulse > SafeMaxPulse):
		return fmt.Errorf("servo: pulses %s to %s outside the safe %s to %s (set AllowWidePulses / wide=true if your servo's datasheet allows it)",
			c.MinPulse, c.MaxPulse, SafeMinPulse, SafeMaxPulse)
	case c.MinAngle >= c.MaxAngle:
		return fmt.Errorf("servo: minimum angle %s is not below maximum angle %s", deg(c.MinAngle), deg(c.MaxAngle))
	case c.MaxAngle-c.MinAngle > 2*360*physic.Degree:
		return fmt.Errorf("servo: angle range %s to %s wider than 720°", deg(c.MinAngle), deg(c.MaxAngle))
	}
	return nil
}

// Pulse returns the pulse width for angle a, or an error wrapping
// ErrOutOfRange. c must have defaults applied.
func (c Config) Pulse(a physic.Angle) (time.Duration, error) {
	if a < c.MinAngle || a > c.MaxAngle {
		return 0, fmt.Errorf("%w: %s not within %s to %s", ErrOutOfRange, deg(a), deg(c.MinAngle), deg(c.MaxAngle))
	}
	frac := float64(a-c.MinAngle) / float64(c.MaxAngle-c.MinAngle)
	if c.Reverse {
		frac = 1 - frac
	}
	return c.MinPulse + time.Duration(math.Round(frac*float64(c.MaxPulse-c.MinPulse))), nil
}

// AngleOf is the inverse of Pulse: the angle a pulse width commands.
func (c Config) AngleOf(p time.Duration) physic.Angle {
	frac := float64(p-c.MinPulse) / float64(c.MaxPulse-c.MinPulse)
	if c.Reverse {
		frac = 1 - frac
	}
	return c.MinAngle + physic.Angle(math.Round(frac*float64(c.MaxAngle-c.MinAngle)))
}

// configOptions are the option keys every driver spec accepts.
var configOptions = []string{"min", "max", "angles", "freq", "reverse", "wide"}

// applyOptions sets the fields of c named by spec options (see the package
// documentation) and validates the result.
func applyOptions(c Config, opts map[string]string) (Config, error) {
	for k, v := range opts {
		var err error
		switch k {
		case "min":
			c.MinPulse, err = time.ParseDuration(v)
		case "max":
			c.MaxPulse, err = time.ParseDuration(v)
		case "freq":
			err = c.Frequency.Set(v)
		case "reverse":
			c.Reverse, err = strconv.ParseBool(v)
		case "wide":
			c.AllowWidePulses, err = strconv.ParseBool(v)
		case "angles":
			c.MinAngle, c.MaxAngle, err = parseAngleRange(v)
		}
		if err != nil {
			return Config{}, fmt.Errorf("servo: option %s=%q: %v", k, v, err)
		}
	}
	c = c.WithDefaults()
	return c, c.Validate()
}

// parseAngleRange parses "LO..HI" with each bound in degrees ("0", "-90")
// or with a unit periph understands ("1.5rad").
func parseAngleRange(s string) (lo, hi physic.Angle, err error) {
	a, b, ok := strings.Cut(s, "..")
	if !ok {
		return 0, 0, fmt.Errorf("want LO..HI, e.g. 0..180")
	}
	if lo, err = parseAngle(a); err != nil {
		return 0, 0, err
	}
	if hi, err = parseAngle(b); err != nil {
		return 0, 0, err
	}
	if lo == 0 && hi == 0 {
		return 0, 0, fmt.Errorf("empty range")
	}
	return lo, hi, nil
}

// ParseAngle parses an angle given in degrees ("90", "-12.5") or with a unit
// periph understands ("90°", "1.5rad"), for command-line flags.
func ParseAngle(s string) (physic.Angle, error) {
	a, err := parseAngle(s)
	if err != nil {
		return 0, fmt.Errorf("servo: angle %q: %v", s, err)
	}
	return a, nil
}

func parseAngle(s string) (physic.Angle, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.Abs(f) > 1e6 {
			return 0, fmt.Errorf("not a usable angle")
		}
		return physic.Angle(math.Round(f * float64(physic.Degree))), nil
	}
	var a physic.Angle
	if err := a.Set(s); err != nil {
		return 0, err
	}
	return a, nil
}

// deg formats an angle in degrees with at most two decimals ("90°",
// "12.5°"); periph's Angle.String varies its precision with magnitude.
func deg(a physic.Angle) string {
	d := math.Round(float64(a)/float64(physic.Degree)*100) / 100
	return strconv.FormatFloat(d, 'f', -1, 64) + "°"
}
