//go:build cgo && linux

// Package mediadevices adds a "mediadevices" driver to package camera, for
// webcams that only offer raw formats (YUYV, NV12, I420): it captures
// through github.com/pion/mediadevices and encodes each frame to JPEG once.
// Cameras with MJPEG output are better served by camera's v4l2 driver,
// which passes their frames through without any encoding.
//
// It needs cgo, and it is a separate package on purpose: mediadevices' V4L2
// driver lists and briefly opens every /dev/video* device when it is
// initialised, and a program should only do that when it asked for this
// driver. Import it for its side effect:
//
//	import _ "github.com/pikit/pikit/camera/mediadevices"
//
// and open a camera with camera.Open("mediadevices:LABEL?size=640x480&fps=30").
package mediadevices

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/mediadevices/pkg/driver"
	"github.com/pion/mediadevices/pkg/frame"
	"github.com/pion/mediadevices/pkg/io/video"
	"github.com/pion/mediadevices/pkg/prop"

	// The V4L2 camera driver of mediadevices; it needs cgo, and its init
	// opens the /dev/video* devices (see the package documentation).
	_ "github.com/pion/mediadevices/pkg/driver/camera"

	"github.com/pikit/pikit/camera"
	"github.com/pikit/pikit/internal/devspec"
)

const mediaDevicesUsage = "mediadevices[:LABEL][?size=WIDTHxHEIGHT&fps=N]"

// mediaDevicesFormats are the raw formats we ask for, in order of
// preference; compressed formats are the v4l2 driver's job.
var mediaDevicesFormats = []frame.Format{frame.FormatYUYV, frame.FormatUYVY, frame.FormatI420, frame.FormatNV12, frame.FormatNV21}

type mediaDevicesSource struct {
	label string
	d     driver.Driver
	r     video.Reader
	enc   jpegBuffer
	seq   uint64

	mu        sync.Mutex // serialises ReadFrame with the end of Close
	closeOnce sync.Once
	closed    chan struct{}
}

// jpegBuffer is a bytes.Buffer that image/jpeg writes to directly (with a
// Flush method it skips its own bufio layer).
type jpegBuffer struct{ bytes.Buffer }

func (*jpegBuffer) Flush() error { return nil }

// parseSize parses "WIDTHxHEIGHT".
func parseSize(s string) (w, h int, err error) {
	ws, hs, ok := strings.Cut(s, "x")
	if ok {
		w, err = strconv.Atoi(ws)
		if err == nil {
			h, err = strconv.Atoi(hs)
		}
	}
	if !ok || err != nil || w <= 0 || h <= 0 {
		return 0, 0, fmt.Errorf("bad size %q: want WIDTHxHEIGHT, e.g. 640x480", s)
	}
	return w, h, nil
}

func openMediaDevices(arg string) (camera.Source, error) {
	label, o, err := devspec.ParseArg(arg, "size", "fps")
	if err != nil {
		return nil, fmt.Errorf("camera: mediadevices: %w", err)
	}
	want := prop.Video{Width: 640, Height: 480, FrameRate: 30}
	if s, ok := o["size"]; ok {
		if want.Width, want.Height, err = parseSize(s); err != nil {
			return nil, fmt.Errorf("camera: mediadevices: %w (form: %s)", err, mediaDevicesUsage)
		}
	}
	if s, ok := o["fps"]; ok {
		fps, err := strconv.Atoi(s)
		if err != nil || fps < 1 || fps > 120 {
			return nil, fmt.Errorf("camera: mediadevices: option fps=%q: want a whole number from 1 to 120", s)
		}
		want.FrameRate = float32(fps)
	}

	var labels []string
	var d driver.Driver
	for _, c := range driver.GetManager().Query(driver.FilterAnd(driver.FilterVideoRecorder(), driver.FilterDeviceType(driver.Camera))) {
		l := c.Info().Label
		labels = append(labels, l)
		// Labels look like "usb-...-video-index0;video0": either part,
		// or the whole, selects the camera.
		if d == nil && (label == "" || l == label || containsPart(l, label)) {
			d = c
		}
	}
	if d == nil {
		if len(labels) == 0 {
			return nil, errors.New("camera: mediadevices: no camera found")
		}
		return nil, fmt.Errorf("camera: mediadevices: no camera labelled %q (cameras: %s)", label, strings.Join(labels, ", "))
	}
	if err := d.Open(); err != nil {
		return nil, fmt.Errorf("camera: mediadevices: %s: open: %w", d.Info().Label, err)
	}
	p, ok := pickMediaProp(d.Properties(), want)
	if !ok {
		d.Close()
		return nil, fmt.Errorf("camera: mediadevices: %s offers no raw format (%v); try the v4l2 driver", d.Info().Label, mediaDevicesFormats)
	}
	r, err := d.(driver.VideoRecorder).VideoRecord(p)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("camera: mediadevices: %s: start %s %dx%d: %w", d.Info().Label, p.FrameFormat, p.Width, p.Height, err)
	}
	return &mediaDevicesSource{label: d.Info().Label, d: d, r: r, closed: make(chan struct{})}, nil
}

func containsPart(label, part string) bool {
	for _, p := range strings.Split(label, ";") {
		if p == part {
			return true
		}
	}
	return false
}

// pickMediaProp chooses the camera mode closest to want among the raw
// formats: the exact size if offered, else the nearest by area, then the
// nearest frame rate, then the preferred format.
func pickMediaProp(props []prop.Media, want prop.Video) (prop.Media, bool) {
	rank := func(f frame.Format) int {
		for i, g := range mediaDevicesFormats {
			if f == g {
				return i
			}
		}
		return -1
	}
	abs := func(x float64) float64 {
		if x < 0 {
			return -x
		}
		return x
	}
	var best prop.Media
	var bestScore []float64
	for _, p := range props {
		r := rank(p.FrameFormat)
		if r < 0 {
			continue
		}
		score := []float64{
			abs(float64(p.Width*p.Height - want.Width*want.Height)),
			abs(float64(p.FrameRate - want.FrameRate)),
			float64(r),
		}
		if bestScore == nil || less(score, bestScore) {
			best, bestScore = p, score
		}
	}
	if bestScore == nil {
		return prop.Media{}, false
	}
	if best.FrameRate == 0 {
		best.FrameRate = want.FrameRate
	}
	return best, true
}

func less(a, b []float64) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// ReadFrame returns the next frame, encoded to JPEG. mediadevices' reader
// cannot be interrupted, so ctx is checked before each read; Close does
// interrupt it.
func (m *mediaDevicesSource) ReadFrame(ctx context.Context) (camera.Frame, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.closed:
		return camera.Frame{}, camera.ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return camera.Frame{}, err
	}
	img, release, err := m.r.Read()
	t := time.Now()
	if err != nil {
		select {
		case <-m.closed:
			return camera.Frame{}, camera.ErrClosed
		default:
		}
		if err == io.EOF {
			return camera.Frame{}, io.EOF
		}
		return camera.Frame{}, fmt.Errorf("camera: mediadevices: %s: %w", m.label, err)
	}
	m.enc.Reset()
	err = jpeg.Encode(&m.enc, img, &jpeg.Options{Quality: 75})
	release()
	if err != nil {
		return camera.Frame{}, fmt.Errorf("camera: mediadevices: %s: encode: %w", m.label, err)
	}
	data := make([]byte, m.enc.Len())
	copy(data, m.enc.Bytes())
	m.seq++
	return camera.Frame{Data: data, Seq: m.seq, Time: t}, nil
}

// Close stops the camera; a concurrent ReadFrame returns camera.ErrClosed.
func (m *mediaDevicesSource) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.closed)
		// mediadevices' Close cancels a blocked Read and waits for it.
		if e := m.d.Close(); e != nil {
			err = fmt.Errorf("camera: mediadevices: %s: close: %w", m.label, e)
		}
	})
	return err
}

func init() {
	if err := camera.Register(camera.Driver{Name: "mediadevices", Usage: mediaDevicesUsage, Open: openMediaDevices}); err != nil {
		panic(err)
	}
}
