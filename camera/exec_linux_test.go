package camera

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDetectRpicam(t *testing.T) {
	if _, ok := detectV4L2(); ok {
		t.Skip("a V4L2 MJPEG camera is attached: detection defers to it")
	}
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	if arg, ok := detectRpicam(); ok {
		t.Fatalf("detected %q with an empty PATH", arg)
	}
	for _, prog := range []string{"libcamera-vid", "rpicam-vid"} {
		if err := os.WriteFile(filepath.Join(dir, prog), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		arg, ok := detectRpicam()
		if want := prog + " -t 0 -n --codec mjpeg -o -"; !ok || arg != want {
			t.Errorf("with %s installed: %q, %v; want %q", prog, arg, ok, want)
		}
	}
	if spec, err := Resolve("auto"); err != nil || spec != "exec:rpicam-vid -t 0 -n --codec mjpeg -o -" {
		t.Errorf("Resolve(auto) = %q, %v", spec, err)
	}
	t.Setenv("PATH", t.TempDir())
	if spec, err := Resolve("auto"); err != nil || spec != "sim" {
		t.Errorf("Resolve(auto) without cameras = %q, %v; want sim", spec, err)
	}
}
