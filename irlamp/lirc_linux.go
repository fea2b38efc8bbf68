package irlamp

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/pikit/pikit/internal/devspec"
)

// ioctl requests of linux/lirc.h. Each encodes sizeof(__u32), which is 4 on
// every Linux architecture, so the numbers are the same on 32-bit ARM,
// arm64 and amd64.
const (
	lircGetFeatures      = 0x80046900 // _IOR('i', 0x00, __u32)
	lircSetSendMode      = 0x40046911 // _IOW('i', 0x11, __u32)
	lircSetSendCarrier   = 0x40046913 // _IOW('i', 0x13, __u32)
	lircSetSendDutyCycle = 0x40046915 // _IOW('i', 0x15, __u32)
)

// The lirc driver registers only on Linux, the only OS with /dev/lirc; its
// logic (lirc.go) is portable so that it is tested everywhere. It registers
// before lircd (this file's name sorts first), so "auto" prefers the kernel
// device when both are present.
func init() {
	openLircDevice = openLircFile
	registry.MustRegister(devspec.Driver[Transmitter]{
		Name:  "lirc",
		Usage: lircUsage,
		Open:  openLirc,
		// Opens read-only to read the features; never writes.
		Detect: func() (string, bool) {
			paths := make([]string, lircDetectCount)
			for i := range paths {
				paths[i] = "/dev/lirc" + strconv.Itoa(i)
			}
			return detectLirc(paths, probeLirc, func() bool {
				_, ok := detectLircd(DefaultLircdSocket)
				return ok
			})
		},
	})
}

// lircFile is an open /dev/lircN. Its file descriptor is used directly, not
// through os.File: the runtime poller would make it non-blocking, and a
// lirc write must block until the signal is sent.
type lircFile struct{ fd int }

// openLircFile opens a lirc device for writing, after checking that the
// path is a character device at all.
func openLircFile(path string) (lircDev, error) {
	fd, err := openCharDevice(path, unix.O_RDWR)
	if err != nil {
		return nil, err
	}
	return &lircFile{fd: fd}, nil
}

// openCharDevice opens path, refusing anything but a character device.
func openCharDevice(path string, mode int) (int, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return -1, err
	}
	if fi.Mode()&os.ModeCharDevice == 0 {
		return -1, fmt.Errorf("%s is not a character device, so not a lirc device (mode %s)", path, fi.Mode())
	}
	for {
		fd, err := unix.Open(path, mode|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// probeLirc returns the features of a lirc device, opened read-only.
func probeLirc(path string) (uint32, error) {
	fd, err := openCharDevice(path, unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return unix.IoctlGetUint32(fd, lircGetFeatures)
}

func (f *lircFile) features() (uint32, error) {
	return unix.IoctlGetUint32(f.fd, lircGetFeatures)
}

func (f *lircFile) setSendMode(mode uint32) error {
	return f.setU32(lircSetSendMode, mode)
}

func (f *lircFile) setCarrier(hz uint32) error {
	return f.setU32(lircSetSendCarrier, hz)
}

func (f *lircFile) setDutyCycle(percent uint32) error {
	return f.setU32(lircSetSendDutyCycle, percent)
}

// setU32 passes a pointer to a __u32, as the lirc _IOW ioctls expect.
func (f *lircFile) setU32(req uint, v uint32) error {
	return unix.IoctlSetPointerInt(f.fd, req, int(int32(v)))
}

// write sends one buffer. The kernel takes it whole or refuses it; EINTR
// comes before anything is transmitted (waiting for the device lock), so it
// is retried.
func (f *lircFile) write(b []byte) error {
	for {
		n, err := unix.Write(f.fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n != len(b) {
			return fmt.Errorf("short write: %d of %d bytes", n, len(b))
		}
		return nil
	}
}

func (f *lircFile) close() error { return unix.Close(f.fd) }
