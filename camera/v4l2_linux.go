package camera

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pikit/pikit/internal/devspec"
)

// The kernel's V4L2 structures (linux/videodev2.h). Their sizes differ
// between 32- and 64-bit systems (pointers, long, struct timeval), and the
// ioctl numbers encode the sizes, so the numbers are computed from these
// definitions rather than copied from a 64-bit header.

type v4l2Capability struct {
	Driver       [16]byte
	Card         [32]byte
	BusInfo      [32]byte
	Version      uint32
	Capabilities uint32
	DeviceCaps   uint32
	Reserved     [3]uint32
}

type v4l2Fmtdesc struct {
	Index       uint32
	Type        uint32
	Flags       uint32
	Description [32]byte
	PixelFormat uint32
	MbusCode    uint32
	Reserved    [3]uint32
}

type v4l2PixFormat struct {
	Width        uint32
	Height       uint32
	PixelFormat  uint32
	Field        uint32
	BytesPerLine uint32
	SizeImage    uint32
	Colorspace   uint32
	Priv         uint32
	Flags        uint32
	YcbcrEnc     uint32
	Quantization uint32
	XferFunc     uint32
}

type v4l2Format struct {
	Type uint32
	// The kernel's union also holds struct v4l2_window, which has
	// pointers: the union is pointer-aligned, so on 64-bit systems there
	// are 4 bytes of padding after Type (208 bytes in all, 204 on 32-bit).
	Fmt struct {
		_   [0]uintptr
		Raw [200]byte
	}
}

type v4l2Fract struct {
	Numerator   uint32
	Denominator uint32
}

type v4l2CaptureParm struct {
	Capability   uint32
	CaptureMode  uint32
	TimePerFrame v4l2Fract
	ExtendedMode uint32
	ReadBuffers  uint32
	Reserved     [4]uint32
}

// v4l2StreamParm's union has no pointers: 204 bytes everywhere.
type v4l2StreamParm struct {
	Type uint32
	Parm [200]byte
}

type v4l2RequestBuffers struct {
	Count        uint32
	Type         uint32
	Memory       uint32
	Capabilities uint32
	Flags        uint8
	Reserved     [3]uint8
}

type v4l2Timecode struct {
	Type     uint32
	Flags    uint32
	Frames   uint8
	Seconds  uint8
	Minutes  uint8
	Hours    uint8
	Userbits [4]uint8
}

// v4l2Buffer is struct v4l2_buffer with the classic struct timeval of
// longs: 88 bytes on 64-bit, 68 on 32-bit. 32-bit kernels with 64-bit
// time_t still accept this layout under its own ioctl numbers.
type v4l2Buffer struct {
	Index     uint32
	Type      uint32
	BytesUsed uint32
	Flags     uint32
	Field     uint32
	Timestamp unix.Timeval
	Timecode  v4l2Timecode
	Sequence  uint32
	Memory    uint32
	// M is the union { __u32 offset; unsigned long userptr; struct
	// v4l2_plane *planes; __s32 fd; }: pointer-sized.
	M         uintptr
	Length    uint32
	Reserved2 uint32
	RequestFD int32
}

const (
	v4l2CapTimePerFrame = 0x1000
	v4l2BufFlagTSMask   = 0xe000
	v4l2BufFlagTSMono   = 0x2000
)

// ioctl request numbers: _IOC(dir, 'V', nr, size).
var (
	vidiocQuerycap  = ioc(iocRead, 0, unsafe.Sizeof(v4l2Capability{}))
	vidiocEnumFmt   = ioc(iocRead|iocWrite, 2, unsafe.Sizeof(v4l2Fmtdesc{}))
	vidiocSFmt      = ioc(iocRead|iocWrite, 5, unsafe.Sizeof(v4l2Format{}))
	vidiocReqbufs   = ioc(iocRead|iocWrite, 8, unsafe.Sizeof(v4l2RequestBuffers{}))
	vidiocQuerybuf  = ioc(iocRead|iocWrite, 9, unsafe.Sizeof(v4l2Buffer{}))
	vidiocQbuf      = ioc(iocRead|iocWrite, 15, unsafe.Sizeof(v4l2Buffer{}))
	vidiocDqbuf     = ioc(iocRead|iocWrite, 17, unsafe.Sizeof(v4l2Buffer{}))
	vidiocStreamon  = ioc(iocWrite, 18, unsafe.Sizeof(int32(0)))
	vidiocStreamoff = ioc(iocWrite, 19, unsafe.Sizeof(int32(0)))
	vidiocGParm     = ioc(iocRead|iocWrite, 21, unsafe.Sizeof(v4l2StreamParm{}))
	vidiocSParm     = ioc(iocRead|iocWrite, 22, unsafe.Sizeof(v4l2StreamParm{}))
)

const (
	iocWrite = 1
	iocRead  = 2
)

// ioc encodes an ioctl number the way linux/ioctl.h does. Most
// architectures use the generic layout; MIPS, PowerPC and SPARC have three
// direction bits and a 13-bit size.
func ioc(dir, nr, size uintptr) uintptr {
	dirShift, write, read := uintptr(30), uintptr(1), uintptr(2)
	switch runtime.GOARCH {
	case "mips", "mipsle", "mips64", "mips64le", "ppc64", "ppc64le", "sparc64":
		dirShift, write, read = 29, 4, 2
	}
	var d uintptr
	if dir&iocWrite != 0 {
		d |= write
	}
	if dir&iocRead != 0 {
		d |= read
	}
	return d<<dirShift | size<<16 | 'V'<<8 | nr
}

// linuxV4L2 is a V4L2 device node.
type linuxV4L2 struct {
	fd     int
	wakeFD int // eventfd that interrupts poll
	bufs   [][]byte
}

func init() {
	openV4L2Dev = func(path string) (v4l2Dev, error) { return openLinuxV4L2(path) }
	registry.MustRegister(devspec.Driver[Source]{
		Name:   "v4l2",
		Usage:  v4l2Usage,
		Open:   openV4L2,
		Detect: detectV4L2,
	})
}

func openV4L2(arg string) (Source, error) {
	path, opts, err := parseV4L2Arg(arg)
	if err != nil {
		return nil, err
	}
	return NewV4L2(path, opts)
}

func openLinuxV4L2(path string) (*linuxV4L2, error) {
	// Non-blocking, so that DQBUF never blocks: waiting is done in poll,
	// where Close can interrupt it.
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	wfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	return &linuxV4L2{fd: fd, wakeFD: wfd}, nil
}

func (d *linuxV4L2) ioctl(req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(d.fd), req, uintptr(arg))
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return errno
	}
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func (d *linuxV4L2) querycap() (v4l2Caps, error) {
	var c v4l2Capability
	if err := d.ioctl(vidiocQuerycap, unsafe.Pointer(&c)); err != nil {
		return v4l2Caps{}, err
	}
	caps := c.Capabilities
	if caps&v4l2CapDeviceCaps != 0 {
		caps = c.DeviceCaps
	}
	return v4l2Caps{Driver: cString(c.Driver[:]), Card: cString(c.Card[:]), BusInfo: cString(c.BusInfo[:]), Caps: caps}, nil
}

func (d *linuxV4L2) formats() ([]uint32, error) {
	var out []uint32
	for i := uint32(0); i < 256; i++ {
		f := v4l2Fmtdesc{Index: i, Type: v4l2BufTypeVideoCapture}
		if err := d.ioctl(vidiocEnumFmt, unsafe.Pointer(&f)); err != nil {
			if err == unix.EINVAL { // the end of the list
				break
			}
			return nil, err
		}
		out = append(out, f.PixelFormat)
	}
	return out, nil
}

func (d *linuxV4L2) setFormat(w, h int, pixfmt uint32) (int, int, uint32, error) {
	f := v4l2Format{Type: v4l2BufTypeVideoCapture}
	pix := (*v4l2PixFormat)(unsafe.Pointer(&f.Fmt.Raw[0]))
	pix.Width, pix.Height, pix.PixelFormat = uint32(w), uint32(h), pixfmt
	if err := d.ioctl(vidiocSFmt, unsafe.Pointer(&f)); err != nil {
		return 0, 0, 0, err
	}
	return int(pix.Width), int(pix.Height), pix.PixelFormat, nil
}

func (d *linuxV4L2) setFPS(fps int) (float64, error) {
	p := v4l2StreamParm{Type: v4l2BufTypeVideoCapture}
	cp := (*v4l2CaptureParm)(unsafe.Pointer(&p.Parm[0]))
	if err := d.ioctl(vidiocGParm, unsafe.Pointer(&p)); err != nil || cp.Capability&v4l2CapTimePerFrame == 0 {
		return 0, nil // the driver has a fixed rate
	}
	cp.TimePerFrame = v4l2Fract{Numerator: 1, Denominator: uint32(fps)}
	if err := d.ioctl(vidiocSParm, unsafe.Pointer(&p)); err != nil {
		return 0, err
	}
	if cp.TimePerFrame.Numerator == 0 {
		return 0, nil
	}
	return float64(cp.TimePerFrame.Denominator) / float64(cp.TimePerFrame.Numerator), nil
}

func (d *linuxV4L2) requestBuffers(n int) (int, error) {
	r := v4l2RequestBuffers{Count: uint32(n), Type: v4l2BufTypeVideoCapture, Memory: v4l2MemoryMmap}
	if err := d.ioctl(vidiocReqbufs, unsafe.Pointer(&r)); err != nil {
		return 0, err
	}
	return int(r.Count), nil
}

func (d *linuxV4L2) mapBuffer(i int) ([]byte, error) {
	b := v4l2Buffer{Index: uint32(i), Type: v4l2BufTypeVideoCapture, Memory: v4l2MemoryMmap}
	if err := d.ioctl(vidiocQuerybuf, unsafe.Pointer(&b)); err != nil {
		return nil, err
	}
	// The union's first member, the u32 offset, read as such so that it
	// is right on big-endian machines too.
	offset := *(*uint32)(unsafe.Pointer(&b.M))
	m, err := unix.Mmap(d.fd, int64(offset), int(b.Length), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	d.bufs = append(d.bufs, m)
	return m, nil
}

func (d *linuxV4L2) queue(i int) error {
	b := v4l2Buffer{Index: uint32(i), Type: v4l2BufTypeVideoCapture, Memory: v4l2MemoryMmap}
	return d.ioctl(vidiocQbuf, unsafe.Pointer(&b))
}

func (d *linuxV4L2) streamOn() error {
	t := int32(v4l2BufTypeVideoCapture)
	return d.ioctl(vidiocStreamon, unsafe.Pointer(&t))
}

func (d *linuxV4L2) streamOff() error {
	t := int32(v4l2BufTypeVideoCapture)
	return d.ioctl(vidiocStreamoff, unsafe.Pointer(&t))
}

func (d *linuxV4L2) dequeue() (v4l2Buf, error) {
	b := v4l2Buffer{Type: v4l2BufTypeVideoCapture, Memory: v4l2MemoryMmap}
	if err := d.ioctl(vidiocDqbuf, unsafe.Pointer(&b)); err != nil {
		if err == unix.EAGAIN {
			return v4l2Buf{}, errAgain
		}
		return v4l2Buf{}, err
	}
	out := v4l2Buf{Index: int(b.Index), BytesUsed: int(b.BytesUsed), Flags: b.Flags}
	if b.Flags&v4l2BufFlagTSMask == v4l2BufFlagTSMono {
		var now unix.Timespec
		if unix.ClockGettime(unix.CLOCK_MONOTONIC, &now) == nil {
			age := time.Duration(now.Nano() - b.Timestamp.Nano())
			if age > 0 && age < time.Second {
				out.Age = age
			}
		}
	}
	return out, nil
}

func (d *linuxV4L2) wait(timeout time.Duration) (bool, error) {
	fds := []unix.PollFd{{Fd: int32(d.fd), Events: unix.POLLIN}, {Fd: int32(d.wakeFD), Events: unix.POLLIN}}
	ms := int((timeout + time.Millisecond - 1) / time.Millisecond)
	if _, err := unix.Poll(fds, ms); err != nil {
		if err == unix.EINTR {
			return false, nil
		}
		return false, fmt.Errorf("poll: %w", err)
	}
	if fds[1].Revents != 0 {
		var b [8]byte
		_, _ = unix.Read(d.wakeFD, b[:]) // reset the eventfd
	}
	if fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
		return false, fmt.Errorf("device error (unplugged?)")
	}
	return fds[0].Revents&unix.POLLIN != 0, nil
}

func (d *linuxV4L2) wake() {
	var b [8]byte // an eventfd takes a native-endian uint64 to add
	binary.NativeEndian.PutUint64(b[:], 1)
	_, _ = unix.Write(d.wakeFD, b[:])
}

func (d *linuxV4L2) close() error {
	for _, b := range d.bufs {
		_ = unix.Munmap(b)
	}
	d.bufs = nil
	unix.Close(d.wakeFD)
	return unix.Close(d.fd)
}

// detectV4L2 returns the first /dev/videoN that is a streaming capture
// device with MJPEG output. It opens each device to ask, which does not
// start capture or change its settings. A Raspberry Pi camera module's
// node (unicam, raw Bayer) and the Pi's codec nodes do not qualify.
func detectV4L2() (string, bool) {
	paths, _ := filepath.Glob("/dev/video*")
	num := func(p string) int {
		n, err := strconv.Atoi(strings.TrimPrefix(p, "/dev/video"))
		if err != nil {
			return 1 << 30
		}
		return n
	}
	sort.Slice(paths, func(i, j int) bool { return num(paths[i]) < num(paths[j]) })
	for _, p := range paths {
		if num(p) > 63 {
			break
		}
		d, err := openLinuxV4L2(p)
		if err != nil {
			continue
		}
		_, pixfmt, _, err := v4l2Suitable(d)
		d.close()
		if err == nil && pixfmt != 0 {
			return p, true
		}
	}
	return "", false
}
