// Package devspec implements the driver-spec convention shared by every pikit
// device package: a device is opened from a one-line string "driver:argument",
// drivers register themselves by name (without touching hardware), and the
// special spec "auto" picks the first registered driver that detects its
// hardware, falling back to the simulated driver and saying so.
//
// Device packages wrap a Registry in a few exported functions (Register, Open,
// Resolve, Drivers) so that users learn the convention once.
package devspec

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
)

// Auto is the spec that selects real hardware when present and the fallback
// driver otherwise.
const Auto = "auto"

// ErrUnknownDriver is wrapped by Open and Resolve when the spec names no
// registered driver.
var ErrUnknownDriver = errors.New("unknown driver")

// Driver describes one way of opening a device of type T.
type Driver[T any] struct {
	// Name is the part of a spec before the first colon, e.g. "sysfs".
	// It must be lower case letters, digits, '+', '-' or '.'.
	Name string
	// Usage lists the accepted spec forms, e.g. "sysfs:pwmchipN/M".
	// It is shown in errors, so that a user who typed a bad spec sees
	// what would have worked.
	Usage string
	// Open opens the device. arg is everything after "Name:" (empty when
	// the spec is just the name).
	Open func(arg string) (T, error)
	// Detect, if set, reports whether this driver's hardware is present
	// and the argument "auto" should use. It must be cheap and must not
	// change any hardware state (reading sysfs or stat-ing a device node
	// is fine). Drivers without Detect are never chosen by "auto".
	Detect func() (arg string, ok bool)
}

// Registry holds the drivers of one device package.
// Its methods are safe for concurrent use.
type Registry[T any] struct {
	pkg      string
	fallback string

	mu      sync.RWMutex
	order   []string
	drivers map[string]Driver[T]
	notice  io.Writer
}

// New returns an empty registry for the package named pkg (used as the error
// prefix). fallback names the driver "auto" uses when no hardware is detected;
// it must be registered before Open("auto") is called.
func New[T any](pkg, fallback string) *Registry[T] {
	return &Registry[T]{pkg: pkg, fallback: fallback, drivers: map[string]Driver[T]{}, notice: os.Stderr}
}

// SetNotice sets where "auto" reports a fallback to the simulated driver
// (default os.Stderr). A nil writer silences the notice.
func (r *Registry[T]) SetNotice(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notice = w
}

// Register adds a driver. Registering a name twice, an invalid name, or a
// driver without Open is an error.
func (r *Registry[T]) Register(d Driver[T]) error {
	if !validName(d.Name) || d.Name == Auto {
		return fmt.Errorf("%s: invalid driver name %q", r.pkg, d.Name)
	}
	if d.Open == nil {
		return fmt.Errorf("%s: driver %q has no Open function", r.pkg, d.Name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.drivers[d.Name]; dup {
		return fmt.Errorf("%s: driver %q registered twice", r.pkg, d.Name)
	}
	r.drivers[d.Name] = d
	r.order = append(r.order, d.Name)
	return nil
}

// MustRegister is Register for use in init functions of the package's own
// drivers, where a failure is a programming error.
func (r *Registry[T]) MustRegister(d Driver[T]) {
	if err := r.Register(d); err != nil {
		panic(err)
	}
}

// Drivers returns the registered drivers in registration order.
func (r *Registry[T]) Drivers() []Driver[T] {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Driver[T], 0, len(r.order))
	for _, n := range r.order {
		out = append(out, r.drivers[n])
	}
	return out
}

// Split separates a spec into driver name and argument: "name",
// "name:arg" or "name?options" (arg "?options"). It trims surrounding space and reports an error for an empty spec or an invalid name.
func Split(spec string) (name, arg string, err error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return "", "", errors.New("empty spec")
	}
	// The name ends at the first ':' or, for a driver with options and no
	// argument ("sim?slew=1s"), at the '?', which stays in arg.
	i := strings.IndexAny(spec, ":?")
	switch {
	case i < 0:
		name = spec
	case spec[i] == ':':
		name, arg = spec[:i], spec[i+1:]
	default:
		name, arg = spec[:i], spec[i:]
	}
	if !validName(name) {
		return "", "", fmt.Errorf("invalid driver name %q", name)
	}
	return name, arg, nil
}

// Resolve returns the concrete spec that Open(spec) would use: for "auto",
// the first detected driver ("name:arg") or the fallback driver's name; for
// any other spec, the spec itself once its driver is known to exist.
// fellBack reports whether "auto" found no hardware.
func (r *Registry[T]) Resolve(spec string) (resolved string, fellBack bool, err error) {
	name, arg, err := Split(spec)
	if err != nil {
		return "", false, fmt.Errorf("%s: %w; %s", r.pkg, err, r.usage())
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if name != Auto {
		if _, ok := r.drivers[name]; !ok {
			return "", false, fmt.Errorf("%s: %w %q; %s", r.pkg, ErrUnknownDriver, name, r.usage())
		}
		return strings.TrimSpace(spec), false, nil
	}
	if arg != "" {
		return "", false, fmt.Errorf("%s: %q takes no argument; %s", r.pkg, Auto, r.usage())
	}
	for _, n := range r.order {
		d := r.drivers[n]
		if d.Detect == nil {
			continue
		}
		if a, ok := d.Detect(); ok {
			if a == "" {
				return n, false, nil
			}
			return n + ":" + a, false, nil
		}
	}
	if _, ok := r.drivers[r.fallback]; !ok {
		return "", false, fmt.Errorf("%s: no hardware detected and fallback driver %q is not registered", r.pkg, r.fallback)
	}
	return r.fallback, true, nil
}

// Open opens the device a spec names. "auto" is resolved first; when it
// falls back to the simulated driver, a one-line notice goes to the notice
// writer, because a program silently running on a simulation would surprise
// its user.
func (r *Registry[T]) Open(spec string) (T, error) {
	var zero T
	resolved, fellBack, err := r.Resolve(spec)
	if err != nil {
		return zero, err
	}
	name, arg, _ := Split(resolved)
	r.mu.RLock()
	d := r.drivers[name]
	notice := r.notice
	r.mu.RUnlock()
	if fellBack && notice != nil {
		fmt.Fprintf(notice, "%s: no hardware detected, using the simulated %q driver\n", r.pkg, name)
	}
	dev, err := d.Open(arg)
	if err != nil {
		// Drivers prefix their own errors with the package name; add the
		// spec so the user sees which flag was wrong.
		return zero, fmt.Errorf("%w (spec %q)", err, resolved)
	}
	return dev, nil
}

func (r *Registry[T]) usage() string {
	forms := []string{Auto}
	for _, n := range r.order {
		u := r.drivers[n].Usage
		if u == "" {
			u = n
		}
		forms = append(forms, u)
	}
	return "accepted forms: " + strings.Join(forms, ", ")
}

func validName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// ParseArg splits a driver argument of the form "target?key=value&..." into
// the target and its options. Every option key must be in allowed; an unknown
// key, a repeated key or a malformed query is an error naming the accepted
// keys, so that a typo in a flag never goes unnoticed.
func ParseArg(arg string, allowed ...string) (target string, opts map[string]string, err error) {
	target, query, hasQuery := strings.Cut(arg, "?")
	opts = map[string]string{}
	if !hasQuery {
		return target, opts, nil
	}
	vals, err := url.ParseQuery(query)
	if err != nil {
		return "", nil, fmt.Errorf("bad options %q: %w", query, err)
	}
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[a] = true
	}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := vals[k]
		if !ok[k] {
			if len(allowed) == 0 {
				return "", nil, fmt.Errorf("unknown option %q: this driver takes no options", k)
			}
			return "", nil, fmt.Errorf("unknown option %q (accepted: %s)", k, strings.Join(allowed, ", "))
		}
		if len(v) != 1 {
			return "", nil, fmt.Errorf("option %q given %d times", k, len(v))
		}
		opts[k] = v[0]
	}
	return target, opts, nil
}
