package camera

import "os/exec"

func init() {
	registry.MustRegister(execDriver(detectRpicam))
}

// detectRpicam offers the Raspberry Pi camera program (rpicam-vid, called
// libcamera-vid before Raspberry Pi OS bookworm) when it is installed. It
// only looks the program up; running it would start the camera.
//
// Raspberry Pi OS installs rpicam-vid whether or not a camera module is
// attached, while a USB webcam is driven by v4l2, not rpicam-vid: so when
// a V4L2 camera with MJPEG output is present, detection leaves it to the
// v4l2 driver.
func detectRpicam() (string, bool) {
	for _, prog := range []string{"rpicam-vid", "libcamera-vid"} {
		if _, err := exec.LookPath(prog); err != nil {
			continue
		}
		if _, ok := detectV4L2(); ok {
			return "", false
		}
		// -n: no preview window on a Pi with a desktop.
		return prog + " -t 0 -n --codec mjpeg -o -", true
	}
	return "", false
}
