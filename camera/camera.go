// Package camera turns cameras into streams of JPEG frames and serves them
// to many viewers at once.
//
// Frames are JPEG bytes end to end: a Source yields the encoded frames a
// camera (or a program such as rpicam-vid or ffmpeg) produces, and the
// Broadcaster shares each frame with every viewer without decoding,
// re-encoding or copying it.
//
// Sources are opened from a one-line spec with Open, the same way in every
// pikit package:
//
//	exec:rpicam-vid -t 0 --codec mjpeg -o -    any command writing JPEGs/MJPEG to stdout
//	v4l2:/dev/video0?size=1280x720&fps=30      V4L2 camera with MJPEG output, passed through
//	dir:testdata/frames@10                     the JPEG files of a directory, looped at 10 fps
//	sim:640x480@30                             a moving test picture
//	auto                                       first detected camera, else sim
//
// Webcams that only offer raw formats need decoding and encoding, which
// this package avoids: the cgo-only subpackage camera/mediadevices adds a
// "mediadevices" driver for them when imported.
package camera

import (
	"context"
	"errors"
	"time"

	"github.com/pikit/pikit/internal/devspec"
)

// Frame is one encoded picture.
//
// Data is shared between everyone who receives the frame (the Broadcaster
// hands the same slice to every viewer), so it must never be modified.
type Frame struct {
	// Data is one complete JPEG image, from SOI (FF D8) to EOI (FF D9).
	Data []byte
	// Seq numbers the frames of one Source from 1, without gaps; a viewer
	// that sees a gap skipped frames.
	Seq uint64
	// Time is when the frame was captured (or, for sources that cannot
	// tell, when it was read).
	Time time.Time
}

// Source yields frames from a camera.
//
// ReadFrame is not safe for concurrent use (one reader, such as a
// Broadcaster, owns a Source); Close may be called concurrently with
// ReadFrame and makes it return.
type Source interface {
	// ReadFrame blocks until the next frame is available, ctx is done, or
	// the source fails or ends (io.EOF for a source that ended cleanly).
	ReadFrame(ctx context.Context) (Frame, error)
	// Close stops capture and releases the camera (a capture process is
	// killed and reaped).
	Close() error
}

// ErrClosed is returned by a Source or Broadcaster after Close.
var ErrClosed = errors.New("camera: closed")

// Driver describes a way of opening a Source from a spec; see Register.
type Driver struct {
	// Name is the spec prefix before the colon, e.g. "exec".
	Name string
	// Usage shows the accepted form, for errors.
	Usage string
	// Open opens a source from everything after "Name:".
	Open func(arg string) (Source, error)
	// Detect, if set, tells Open("auto") whether this driver's camera is
	// present and which argument to use. It must not start capture.
	Detect func() (arg string, ok bool)
}

var registry = devspec.New[Source]("camera", "sim")

// Register adds a driver so Open can select it by name. It is an error to
// register a name twice; registering must not access hardware.
func Register(d Driver) error { return registry.Register(devspec.Driver[Source](d)) }

// Drivers returns the registered drivers in the order "auto" tries them.
func Drivers() []Driver {
	ds := registry.Drivers()
	out := make([]Driver, len(ds))
	for i, d := range ds {
		out[i] = Driver(d)
	}
	return out
}

// Open opens a Source from a spec (see the package documentation). "auto"
// opens the first driver whose camera is detected, and otherwise the
// simulated camera, saying so on stderr.
func Open(spec string) (Source, error) { return registry.Open(spec) }

// Resolve returns the concrete spec Open would use, without opening
// anything.
func Resolve(spec string) (string, error) {
	s, _, err := registry.Resolve(spec)
	return s, err
}
