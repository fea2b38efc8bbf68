//go:build cgo && linux

package mediadevices

import (
	"strings"
	"testing"

	"github.com/pikit/pikit/camera"

	"github.com/pion/mediadevices/pkg/frame"
	"github.com/pion/mediadevices/pkg/prop"
)

func TestPickMediaProp(t *testing.T) {
	mode := func(w, h int, fps float32, f frame.Format) prop.Media {
		return prop.Media{Video: prop.Video{Width: w, Height: h, FrameRate: fps, FrameFormat: f}}
	}
	props := []prop.Media{
		mode(1280, 720, 30, frame.FormatMJPEG),
		mode(640, 480, 30, frame.FormatMJPEG),
		mode(640, 480, 15, frame.FormatNV12),
		mode(640, 480, 30, frame.FormatYUYV),
		mode(640, 480, 15, frame.FormatYUYV),
		mode(1280, 720, 10, frame.FormatYUYV),
		mode(320, 240, 0, frame.FormatI420),
	}
	for _, tc := range []struct {
		want prop.Video
		got  prop.Media
	}{
		{prop.Video{Width: 640, Height: 480, FrameRate: 30}, props[3]},
		{prop.Video{Width: 640, Height: 480, FrameRate: 15}, props[4]},
		{prop.Video{Width: 1280, Height: 720, FrameRate: 30}, props[5]},
		{prop.Video{Width: 1920, Height: 1080, FrameRate: 30}, props[5]},
		{prop.Video{Width: 320, Height: 240, FrameRate: 25}, mode(320, 240, 25, frame.FormatI420)},
	} {
		got, ok := pickMediaProp(props, tc.want)
		if !ok || got != tc.got {
			t.Errorf("pick for %+v = %+v, %v; want %+v", tc.want, got.Video, ok, tc.got.Video)
		}
	}
	if _, ok := pickMediaProp(props[:2], prop.Video{Width: 640, Height: 480}); ok {
		t.Error("picked a compressed format")
	}
}

func TestOpenMediaDevicesErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"mediadevices?size=x":   `camera: mediadevices: bad size "x"`,
		"mediadevices?fps=1000": `camera: mediadevices: option fps="1000"`,
		"mediadevices?zoom=2":   `camera: mediadevices: unknown option "zoom"`,
	} {
		if _, err := camera.Open(spec); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want %q", spec, err, want)
		}
	}
	// Without a camera (as in CI) the error says so.
	if _, err := camera.Open("mediadevices:pikit-no-such-camera"); err == nil || !strings.HasPrefix(err.Error(), "camera: mediadevices: no camera") {
		t.Errorf("Open of a missing camera: %v", err)
	}
}
