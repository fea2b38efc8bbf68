package camera

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The ioctl numbers as linux/videodev2.h gives them, for 64-bit systems
// and for 32-bit ones with the classic 32-bit struct timeval.
func TestV4L2IoctlNumbers(t *testing.T) {
	type nums struct{ querycap, enumFmt, sFmt, reqbufs, querybuf, qbuf, dqbuf, streamon, streamoff, gParm, sParm uintptr }
	got := nums{vidiocQuerycap, vidiocEnumFmt, vidiocSFmt, vidiocReqbufs, vidiocQuerybuf, vidiocQbuf, vidiocDqbuf, vidiocStreamon, vidiocStreamoff, vidiocGParm, vidiocSParm}
	var want nums
	switch runtime.GOARCH {
	case "amd64", "arm64", "riscv64", "loong64", "s390x":
		want = nums{0x80685600, 0xc0405602, 0xc0d05605, 0xc0145608, 0xc0585609, 0xc058560f, 0xc0585611, 0x40045612, 0x40045613, 0xc0cc5615, 0xc0cc5616}
	case "386", "arm":
		want = nums{0x80685600, 0xc0405602, 0xc0cc5605, 0xc0145608, 0xc0445609, 0xc044560f, 0xc0445611, 0x40045612, 0x40045613, 0xc0cc5615, 0xc0cc5616}
	default:
		t.Skipf("no reference ioctl numbers for %s", runtime.GOARCH)
	}
	if got != want {
		t.Errorf("ioctl numbers on %s:\n got %#x\nwant %#x", runtime.GOARCH, got, want)
	}
	ptr := unsafe.Sizeof(uintptr(0))
	sizes := map[string][2]uintptr{ // name: size on 32-bit, on 64-bit
		"v4l2_capability":     {104, 104},
		"v4l2_fmtdesc":        {64, 64},
		"v4l2_format":         {204, 208},
		"v4l2_pix_format":     {48, 48},
		"v4l2_streamparm":     {204, 204},
		"v4l2_captureparm":    {40, 40},
		"v4l2_requestbuffers": {20, 20},
		"v4l2_buffer":         {68, 88},
	}
	actual := map[string]uintptr{
		"v4l2_capability":     unsafe.Sizeof(v4l2Capability{}),
		"v4l2_fmtdesc":        unsafe.Sizeof(v4l2Fmtdesc{}),
		"v4l2_format":         unsafe.Sizeof(v4l2Format{}),
		"v4l2_pix_format":     unsafe.Sizeof(v4l2PixFormat{}),
		"v4l2_streamparm":     unsafe.Sizeof(v4l2StreamParm{}),
		"v4l2_captureparm":    unsafe.Sizeof(v4l2CaptureParm{}),
		"v4l2_requestbuffers": unsafe.Sizeof(v4l2RequestBuffers{}),
		"v4l2_buffer":         unsafe.Sizeof(v4l2Buffer{}),
	}
	for name, s := range sizes {
		want := s[0]
		if ptr == 8 {
			want = s[1]
		}
		if actual[name] != want {
			t.Errorf("sizeof(struct %s) = %d, want %d", name, actual[name], want)
		}
	}
	var b v4l2Buffer
	ts, m := unsafe.Offsetof(b.Timestamp), unsafe.Offsetof(b.M)
	if ptr == 4 && (ts != 20 || m != 52) || ptr == 8 && (ts != 24 || m != 64) {
		t.Errorf("v4l2_buffer: timestamp at %d, m at %d", ts, m)
	}
}

func TestLinuxV4L2NotADevice(t *testing.T) {
	if _, err := openLinuxV4L2("/nonexistent/video0"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("open a missing device: %v", err)
	}
	_, err := NewV4L2("/dev/null", V4L2Options{})
	if err == nil || !errors.Is(err, unix.ENOTTY) || !strings.HasPrefix(err.Error(), "camera: v4l2: /dev/null: query capabilities: ") {
		t.Errorf("NewV4L2(/dev/null) = %v", err)
	}
	_, err = Open("v4l2:/nonexistent/video9")
	if err == nil || !strings.HasPrefix(err.Error(), "camera: v4l2: open /nonexistent/video9: no such file or directory") {
		t.Errorf("Open a missing device: %v", err)
	}
	// Detection must not fail or hang without cameras (or with them).
	detectV4L2()
}

// wake interrupts wait, and wait times out without it.
func TestLinuxV4L2Wake(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[1])
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	d := &linuxV4L2{fd: p[0], wakeFD: efd}
	defer d.close()

	start := time.Now()
	if ready, err := d.wait(30 * time.Millisecond); ready || err != nil {
		t.Errorf("wait on a silent device: %v, %v", ready, err)
	}
	if e := time.Since(start); e < 30*time.Millisecond {
		t.Errorf("wait returned after %s, before its timeout", e)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		d.wake()
	}()
	start = time.Now()
	if ready, err := d.wait(5 * time.Second); ready || err != nil {
		t.Errorf("woken wait: %v, %v", ready, err)
	}
	if e := time.Since(start); e > time.Second {
		t.Errorf("wake took %s", e)
	}
	// The wake-up was consumed.
	if ready, _ := d.wait(10 * time.Millisecond); ready {
		t.Error("ready after a consumed wake-up")
	}
	unix.Write(p[1], []byte{1})
	if ready, err := d.wait(time.Second); !ready || err != nil {
		t.Errorf("wait on a readable device: %v, %v", ready, err)
	}
}
