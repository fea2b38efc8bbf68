//go:build linux

package audio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pikit/pikit/internal/realprog"
)

// fileALSAConfig writes an ALSA configuration defining the PCM "pikittest":
// the file plugin, which writes every frame played to out, in front of a
// null device. ALSA_CONFIG_PATH replaces the whole system configuration, so
// the slave is given inline ({ type null }) rather than by name: the
// predefined "null" PCM lives in the system alsa.conf, which is not loaded.
// This keeps the test independent of the machine's ALSA setup and sound
// cards.
func fileALSAConfig(t *testing.T, out string) []string {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "asound.conf")
	text := fmt.Sprintf("pcm.pikittest {\n\ttype file\n\tslave.pcm { type null }\n\tfile %q\n\tformat \"raw\"\n}\n", out)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"ALSA_CONFIG_PATH=" + conf}
}

func realALSA(t *testing.T, device string, env []string) (*ALSA, *pids) {
	t.Helper()
	aplay := realprog.Require(t, "aplay", "alsa-utils")
	a, err := NewALSA(device, ALSAOptions{Aplay: aplay, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	p := &pids{started: make(chan int, 100)}
	a.started = p.add
	t.Cleanup(func() { a.Close() })
	return a, p
}

func TestALSARealPlaysExactSamples(t *testing.T) {
	realprog.Require(t, "aplay", "alsa-utils")
	tone := mustTone(t, 777*time.Millisecond)
	stereo24, err := NewClip(48000, 2, 24, pcm(6*4801))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		clip *Clip
	}{
		{"tone 16-bit mono 8 kHz", tone},
		{"default call", DefaultCall()},
		{"8-bit mono", mustClip(t, 8000, 1, 8, pcm(8001))},
		{"16-bit stereo 44.1 kHz", mustClip(t, 44100, 2, 16, pcm(4*44100/3))},
		{"24-bit stereo 48 kHz", stereo24},
		{"32-bit mono 96 kHz", mustClip(t, 96000, 1, 32, pcm(4*9000))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.raw")
			a, p := realALSA(t, "pikittest", fileALSAConfig(t, out))
			if err := a.Play(context.Background(), tc.clip); err != nil {
				t.Fatal(err)
			}
			p.checkReaped(t)
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.clip.Data()
			if len(got) < len(want) || !bytes.Equal(got[:len(want)], want) {
				t.Fatalf("ALSA received %d bytes that differ from the clip's %d bytes of PCM", len(got), len(want))
			}
			// aplay completes its last period with silence (0x80 for
			// unsigned 8-bit), so what follows the clip must be silence.
			silence := byte(0)
			if tc.clip.BitsPerSample() == 8 {
				silence = 0x80
			}
			if pad := got[len(want):]; len(pad)%tc.clip.BlockAlign() != 0 || !allEqual(pad, silence) {
				t.Errorf("%d bytes after the clip are not whole frames of silence", len(pad))
			}
		})
	}
}

func allEqual(b []byte, v byte) bool {
	for _, x := range b {
		if x != v {
			return false
		}
	}
	return true
}

func mustClip(t *testing.T, rate, channels, bits int, data []byte) *Clip {
	t.Helper()
	data = data[:len(data)-len(data)%(channels*bits/8)]
	c, err := NewClip(rate, channels, bits, data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The file plugin's output is a FIFO that the test stops reading after the
// first bytes, so aplay blocks mid-clip as it would on a sound card playing
// in real time; cancelling must stop and reap it promptly. On a card, aplay's
// SIGTERM handler aborts the PCM, which wakes its blocked write; a write to
// a FIFO just restarts, so here the SIGKILL after StopTimeout ends it.
func TestALSARealCancel(t *testing.T) {
	realprog.Require(t, "aplay", "alsa-utils")
	base := runtime.NumGoroutine()
	fifo := filepath.Join(t.TempDir(), "out.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// O_RDWR opens a FIFO without waiting for a writer (Linux), so aplay
	// never blocks in open and the test never blocks if aplay fails.
	r, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a, p := realALSA(t, "pikittest", fileALSAConfig(t, fifo))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Play(ctx, mustTone(t, 30*time.Second)) }()

	first := make([]byte, 1024)
	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.Read(first); err != nil {
		t.Fatalf("no audio reached the FIFO: %v (Play: %v)", err, errNow(done))
	}
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Play returned before cancellation: %v", err)
	default:
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Play: %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Play took %s to return after cancellation", d)
		} else {
			t.Logf("Play returned %s after cancellation", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Play did not return after cancellation")
	}
	p.checkReaped(t)
	a.Close()
	checkGoroutines(t, base)
}

func errNow(done <-chan error) error {
	select {
	case err := <-done:
		return err
	default:
		return errors.New("still running")
	}
}

func TestALSARealBadDevice(t *testing.T) {
	a, p := realALSA(t, "pikit_no_such_device", nil)
	err := a.Play(context.Background(), mustTone(t, 100*time.Millisecond))
	if err == nil || !strings.HasPrefix(err.Error(), "audio: alsa: aplay: exit status 1: ") || !strings.Contains(err.Error(), "Unknown PCM pikit_no_such_device") {
		t.Errorf("error %v, want aplay's complaint about the unknown PCM", err)
	}
	p.checkReaped(t)
}
