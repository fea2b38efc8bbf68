package audio

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/pikit/pikit/internal/devspec"
)

// Player plays clips.
//
// A player plays one clip at a time: Play while another Play is in progress
// returns ErrBusy at once rather than queueing or mixing, so a caller that
// wants to interrupt a sound cancels its context first. Drivers in this
// package are safe for concurrent use. Once closed, Play returns ErrClosed
// (Close itself returns nil).
type Player interface {
	// Play plays c and returns when it has finished playing. If ctx is
	// cancelled first, the sound stops promptly and Play returns
	// ctx.Err(). If the player is closed meanwhile, the sound stops and
	// Play returns ErrClosed.
	Play(ctx context.Context, c *Clip) error
	// Close stops any clip being played, waits for Play to return, and
	// frees the player.
	Close() error
}

var (
	// ErrBusy is returned by Play while the player is playing another
	// clip.
	ErrBusy = errors.New("audio: player busy")
	// ErrClosed is returned by a player that has been closed.
	ErrClosed = errors.New("audio: player closed")
)

// errNoClip is returned for a nil or zero Clip, which only a programming
// mistake produces.
var errNoClip = errors.New("audio: invalid clip (nil or zero value)")

// Driver describes a way of opening a player from a spec; see Register.
type Driver struct {
	// Name is the spec prefix before the colon, e.g. "alsa".
	Name string
	// Usage shows the accepted form, e.g. "alsa:DEVICE", for errors.
	Usage string
	// Open opens a player from everything after "Name:".
	Open func(arg string) (Player, error)
	// Detect, if set, tells Open("auto") whether this driver's hardware is
	// present and which argument to use. It must not touch the hardware's
	// state.
	Detect func() (arg string, ok bool)
}

var registry = devspec.New[Player]("audio", "sim")

// Register adds a driver so Open can select it by name. Drivers register in
// init functions; registering must not access hardware. It is an error to
// register a name twice.
func Register(d Driver) error { return registry.Register(devspec.Driver[Player](d)) }

// Drivers returns the registered drivers in the order "auto" tries them.
func Drivers() []Driver {
	ds := registry.Drivers()
	out := make([]Driver, len(ds))
	for i, d := range ds {
		out[i] = Driver(d)
	}
	return out
}

// Open opens a player from a spec such as "alsa:hw:1,0" or "sim" (see the
// package documentation). "auto" opens the first driver whose hardware is
// detected and falls back to the simulated player, saying so on stderr.
func Open(spec string) (Player, error) { return registry.Open(spec) }

// Resolve returns the concrete spec Open would use for spec, without opening
// anything; useful to show which driver "auto" picked.
func Resolve(spec string) (string, error) {
	s, _, err := registry.Resolve(spec)
	return s, err
}

func init() {
	registry.MustRegister(devspec.Driver[Player]{
		Name:  "alsa",
		Usage: "alsa[:DEVICE]",
		Open: func(arg string) (Player, error) {
			a, err := NewALSA(arg, ALSAOptions{})
			if err != nil {
				return nil, err
			}
			return a, nil
		},
		Detect: detectALSA,
	})
	registry.MustRegister(devspec.Driver[Player]{
		Name:  "sim",
		Usage: "sim[?record=FILE]",
		Open:  openSim,
	})
}

// Variables so tests can pretend a sound card or aplay is (not) there.
var (
	lookPath  = exec.LookPath
	procCards = "/proc/asound/cards"
)

// detectALSA reports ALSA usable when aplay is installed and the kernel has
// at least one sound card; either alone cannot play anything.
func detectALSA() (string, bool) {
	if _, err := lookPath("aplay"); err != nil {
		return "", false
	}
	b, err := os.ReadFile(procCards)
	if err != nil {
		return "", false
	}
	s := strings.TrimSpace(string(b))
	if s == "" || strings.Contains(s, "no soundcards") {
		return "", false
	}
	return defaultDevice, true
}

// gate enforces the Player rules shared by all drivers: one Play at a time,
// ErrClosed after Close, and Close stopping and waiting for the Play in
// flight.
type gate struct {
	mu      sync.Mutex
	busy    bool
	closed  bool
	closing chan struct{} // closed by close to stop the Play in flight
	wg      sync.WaitGroup
}

func newGate() *gate { return &gate{closing: make(chan struct{})} }

// acquire starts a Play; on success the caller must call release.
func (g *gate) acquire() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.closed:
		return ErrClosed
	case g.busy:
		return ErrBusy
	}
	g.busy = true
	g.wg.Add(1)
	return nil
}

func (g *gate) release() {
	g.mu.Lock()
	g.busy = false
	g.mu.Unlock()
	g.wg.Done()
}

func (g *gate) isBusy() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.busy
}

// close marks the gate closed, stops the Play in flight and waits for it.
func (g *gate) close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.closing)
	}
	g.mu.Unlock()
	// wg.Add only happens under mu while not closed, so no Add races
	// with this Wait.
	g.wg.Wait()
}
