//go:build unix

package audio

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeAplay writes a shell script standing in for aplay, so the driver's
// process handling is tested on any Unix, with or without alsa-utils.
func fakeAplay(t *testing.T, script string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "aplay")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func newFakeALSA(t *testing.T, device, script string, opts ALSAOptions) (*ALSA, *pids) {
	t.Helper()
	opts.Aplay = fakeAplay(t, script)
	a, err := NewALSA(device, opts)
	if err != nil {
		t.Fatal(err)
	}
	p := &pids{started: make(chan int, 100)}
	a.started = p.add
	t.Cleanup(func() { a.Close() })
	return a, p
}

// pids records the aplay processes a player started.
type pids struct {
	mu      sync.Mutex
	all     []int
	started chan int
}

func (p *pids) add(pid int) {
	p.mu.Lock()
	p.all = append(p.all, pid)
	p.mu.Unlock()
	p.started <- pid
}

// checkReaped fails if any aplay is still running or a zombie: a process
// that has been waited for no longer exists at all.
func (p *pids) checkReaped(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pid := range p.all {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("aplay (pid %d) not reaped: kill -0 says %v", pid, err)
		}
	}
}

// checkGoroutines fails if the goroutine count does not settle back to
// base: Play must not leave its feeding or waiting goroutines behind.
func checkGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Errorf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestALSAFeedsWAVToAplay(t *testing.T) {
	dir := t.TempDir()
	a, p := newFakeALSA(t, " hw:1,0 ", `printf '%s\n' "$@" > "$OUT.args"; cat > "$OUT.wav"`,
		ALSAOptions{Env: []string{"OUT=" + filepath.Join(dir, "out")}})
	if a.Device() != "hw:1,0" {
		t.Errorf("Device() = %q", a.Device())
	}
	clip := mustTone(t, 300*time.Millisecond)
	if err := a.Play(context.Background(), clip); err != nil {
		t.Fatal(err)
	}
	p.checkReaped(t)
	args, _ := os.ReadFile(filepath.Join(dir, "out.args"))
	if got, want := string(args), "-q\n-D\nhw:1,0\n-t\nwav\n-\n"; got != want {
		t.Errorf("aplay arguments %q, want %q", got, want)
	}
	fed, _ := os.ReadFile(filepath.Join(dir, "out.wav"))
	var want bytes.Buffer
	clip.WriteWAV(&want)
	if !bytes.Equal(fed, want.Bytes()) {
		t.Errorf("aplay got %d bytes on stdin, want the %d-byte WAV", len(fed), want.Len())
	}
}

func TestALSAErrorQuotesStderr(t *testing.T) {
	a, p := newFakeALSA(t, "nosuch", `cat > /dev/null
echo "ALSA lib pcm.c:2666:(snd_pcm_open_noupdate) Unknown PCM nosuch" >&2
echo "aplay: main:831: audio open error: No such file or directory" >&2
exit 1`, ALSAOptions{})
	err := a.Play(context.Background(), mustTone(t, 100*time.Millisecond))
	want := "audio: alsa: aplay: exit status 1: ALSA lib pcm.c:2666:(snd_pcm_open_noupdate) Unknown PCM nosuch; aplay: main:831: audio open error: No such file or directory"
	if err == nil || err.Error() != want {
		t.Errorf("error:\n got %v\nwant %s", err, want)
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
		t.Errorf("error %v does not wrap the exit status", err)
	}
	p.checkReaped(t)

	// Without stderr the exit status alone is reported.
	a2, _ := newFakeALSA(t, "", "exit 3", ALSAOptions{})
	if err := a2.Play(context.Background(), mustTone(t, 100*time.Millisecond)); err == nil || err.Error() != "audio: alsa: aplay: exit status 3" {
		t.Errorf("silent failure: %v", err)
	}
}

func TestALSAStderrBounded(t *testing.T) {
	a, _ := newFakeALSA(t, "", `i=0; while [ $i -lt 2000 ]; do echo "noise line $i of an aplay that will not stop talking" >&2; i=$((i+1)); done; echo "the real reason" >&2; exit 2`, ALSAOptions{})
	err := a.Play(context.Background(), mustTone(t, 100*time.Millisecond))
	if err == nil || len(err.Error()) > stderrTail+200 || !strings.HasSuffix(err.Error(), "; the real reason") || !strings.Contains(err.Error(), "exit status 2: ...") {
		t.Errorf("error of %d bytes: %.200q...", len(err.Error()), err)
	}
}

func TestALSACancel(t *testing.T) {
	base := runtime.NumGoroutine()
	// A long clip that the fake never reads: the feeding goroutine is
	// blocked on a full pipe when the cancellation comes.
	a, p := newFakeALSA(t, "", "exec sleep 30", ALSAOptions{})
	clip := mustTone(t, 30*time.Second)
	for range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Play(ctx, clip) }()
		<-p.started
		time.Sleep(50 * time.Millisecond)
		start := time.Now()
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled Play: %v", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("cancelled Play took %s to return", d)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Play did not return after cancellation")
		}
	}
	p.checkReaped(t)
	a.Close()
	checkGoroutines(t, base)
}

func TestALSAKillsStubbornAplay(t *testing.T) {
	a, p := newFakeALSA(t, "", "trap '' TERM; exec sleep 30", ALSAOptions{StopTimeout: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := a.Play(ctx, mustTone(t, 30*time.Second)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Play: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Play took %s against an aplay ignoring SIGTERM", d)
	}
	p.checkReaped(t)
}

func TestALSABusyAndClose(t *testing.T) {
	base := runtime.NumGoroutine()
	a, p := newFakeALSA(t, "", "exec sleep 30", ALSAOptions{})
	clip := mustTone(t, time.Second)
	done := make(chan error, 1)
	go func() { done <- a.Play(context.Background(), clip) }()
	<-p.started
	start := time.Now()
	if err := a.Play(context.Background(), clip); !errors.Is(err, ErrBusy) {
		t.Errorf("second Play: %v, want ErrBusy", err)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("ErrBusy took %s", d)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Play stopped by Close: %v, want ErrClosed", err)
		}
	default:
		t.Fatal("Close returned before the Play in flight")
	}
	if err := a.Play(context.Background(), clip); !errors.Is(err, ErrClosed) {
		t.Errorf("Play after Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	p.checkReaped(t)
	checkGoroutines(t, base)
}

func TestALSADoesNotRunAplayForNothing(t *testing.T) {
	a, p := newFakeALSA(t, "", "exit 1", ALSAOptions{})
	empty, err := NewClip(8000, 1, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Play(context.Background(), empty); err != nil {
		t.Errorf("empty clip: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Play(ctx, mustTone(t, time.Second)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	if err := a.Play(context.Background(), nil); !errors.Is(err, errNoClip) {
		t.Errorf("nil clip: %v", err)
	}
	if len(p.all) != 0 {
		t.Errorf("aplay ran %d times", len(p.all))
	}
}

func TestNewALSAErrors(t *testing.T) {
	_, err := NewALSA("", ALSAOptions{Aplay: filepath.Join(t.TempDir(), "aplay")})
	if err == nil || !strings.HasPrefix(err.Error(), "audio: alsa: aplay not found (install Debian package alsa-utils): ") {
		t.Errorf("missing aplay: %v", err)
	}
	aplay := fakeAplay(t, "exit 0")
	if _, err := NewALSA("hw:0\n", ALSAOptions{Aplay: aplay}); err != nil {
		t.Errorf("trailing newline is trimmed, got %v", err)
	}
	if _, err := NewALSA("hw:0\x00x", ALSAOptions{Aplay: aplay}); err == nil || err.Error() != `audio: alsa: invalid device name "hw:0\x00x"` {
		t.Errorf("control character: %v", err)
	}
	if _, err := NewALSA("", ALSAOptions{Aplay: aplay, StopTimeout: -1}); err == nil {
		t.Error("negative StopTimeout accepted")
	}
	a, err := NewALSA("  ", ALSAOptions{Aplay: aplay})
	if err != nil || a.Device() != "default" {
		t.Errorf("blank device: %v, %v", a, err)
	}
}

func TestTailWriter(t *testing.T) {
	w := &tailWriter{max: 10}
	w.Write([]byte("abc\n"))
	if w.String() != "abc" {
		t.Errorf("%q", w.String())
	}
	w.Write([]byte("defgh\nij"))
	if got := w.String(); got != "...defgh; ij" {
		t.Errorf("%q", got)
	}
	w.Write([]byte("0123456789ABCDEF"))
	if got := w.String(); got != "...6789ABCDEF" { // a single cut line is kept
		t.Errorf("%q", got)
	}
	if len(w.buf) != 10 {
		t.Errorf("kept %d bytes", len(w.buf))
	}
}
