package camera

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pikit/pikit/internal/devspec"
)

// DirOptions configures a Dir source. The zero value replays at 10 fps.
type DirOptions struct {
	// FPS is the replay rate in frames per second, more than 0 and at
	// most 120; fractions are allowed for a slide show (default 10).
	FPS float64
	// Now stamps Frame.Time (default time.Now). The replay is always
	// paced by the real clock.
	Now func() time.Time
}

// Dir is a Source that replays the JPEG files of a directory in a loop, in
// file name order, at a steady rate: recorded footage or a few stills for
// testing a program without a camera.
//
// The files are read once, when the Dir is created, and every frame shares
// the loaded bytes: each image is in memory once however long it plays.
type Dir struct {
	path   string
	frames [][]byte
	now    func() time.Time
	pace   pacer
	seq    uint64

	closeOnce sync.Once
	closed    chan struct{}
}

// NewDir loads the *.jpg and *.jpeg files (any letter case) of the
// directory path. Each must be a complete JPEG, at most DefaultMaxFrame
// bytes; an empty directory is an error.
func NewDir(path string, opts DirOptions) (*Dir, error) {
	if opts.FPS == 0 {
		opts.FPS = 10
	}
	if !(opts.FPS > 0 && opts.FPS <= 120) { // also refuses NaN
		return nil, fmt.Errorf("camera: dir: frame rate %g out of range (more than 0, at most 120)", opts.FPS)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("camera: dir: %w", err)
	}
	var names []string
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if (ext == ".jpg" || ext == ".jpeg") && e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("camera: dir: no .jpg or .jpeg files in %s", path)
	}
	sort.Strings(names)
	d := &Dir{
		path:   path,
		now:    opts.Now,
		pace:   newPacer(time.Duration(math.Round(float64(time.Second) / opts.FPS))),
		closed: make(chan struct{}),
	}
	for _, n := range names {
		p := filepath.Join(path, n)
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("camera: dir: %w", err)
		}
		if err := checkJPEG(b); err != nil {
			return nil, fmt.Errorf("camera: dir: %s: %w", p, err)
		}
		d.frames = append(d.frames, b)
	}
	return d, nil
}

// checkJPEG checks that b has the shape of a whole JPEG. It does not
// decode it: a frame is passed on as it is.
func checkJPEG(b []byte) error {
	switch {
	case len(b) > DefaultMaxFrame:
		return fmt.Errorf("%d bytes is larger than a frame may be (%d)", len(b), DefaultMaxFrame)
	case len(b) < 4 || b[0] != 0xFF || b[1] != mSOI:
		return fmt.Errorf("not a JPEG: does not start with FF D8")
	case b[len(b)-2] != 0xFF || b[len(b)-1] != mEOI:
		return fmt.Errorf("not a whole JPEG: does not end with FF D9 (truncated, or data after the image)")
	}
	return nil
}

// Len returns the number of images in the loop.
func (d *Dir) Len() int { return len(d.frames) }

// ReadFrame waits for the next frame time and returns the next image of
// the loop.
func (d *Dir) ReadFrame(ctx context.Context) (Frame, error) {
	select {
	case <-d.closed:
		return Frame{}, ErrClosed
	default:
	}
	if err := d.pace.wait(ctx, d.closed); err != nil {
		return Frame{}, err
	}
	data := d.frames[d.seq%uint64(len(d.frames))]
	d.seq++
	return Frame{Data: data, Seq: d.seq, Time: d.now()}, nil
}

// Close ends the replay and makes a concurrent ReadFrame return ErrClosed.
// Closing twice is harmless.
func (d *Dir) Close() error {
	d.closeOnce.Do(func() { close(d.closed) })
	return nil
}

const dirUsage = "dir:PATH[@FPS]"

// openDir opens "dir:PATH" and "dir:PATH@FPS". The rate follows the last
// '@', so a path containing '@' needs an explicit rate.
func openDir(arg string) (Source, error) {
	target, _, err := devspec.ParseArg(arg)
	if err != nil {
		return nil, fmt.Errorf("camera: dir: %w", err)
	}
	var opts DirOptions
	path := target
	if i := strings.LastIndexByte(target, '@'); i >= 0 {
		path = target[:i]
		opts.FPS, err = strconv.ParseFloat(target[i+1:], 64)
		if err != nil || !(opts.FPS > 0) {
			return nil, fmt.Errorf("camera: dir: bad frame rate %q: want a number of frames per second, e.g. 10 or 0.5 (form: %s)", target[i+1:], dirUsage)
		}
	}
	if path == "" {
		return nil, fmt.Errorf("camera: dir: no directory (form: %s)", dirUsage)
	}
	return NewDir(path, opts)
}

func init() {
	registry.MustRegister(devspec.Driver[Source]{Name: "dir", Usage: dirUsage, Open: openDir})
}
