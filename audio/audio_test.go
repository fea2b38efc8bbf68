package audio

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeALSA makes detectALSA and NewALSA see (or not see) aplay and a sound
// card, and restores the real ones after the test.
func fakeALSA(t *testing.T, aplay bool, cards *string) {
	t.Helper()
	oldLook, oldCards := lookPath, procCards
	t.Cleanup(func() { lookPath, procCards = oldLook, oldCards })
	lookPath = func(name string) (string, error) {
		if !aplay {
			return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
		}
		return "/usr/bin/" + name, nil
	}
	procCards = filepath.Join(t.TempDir(), "cards")
	if cards != nil {
		if err := os.WriteFile(procCards, []byte(*cards), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func ptr(s string) *string { return &s }

func TestDrivers(t *testing.T) {
	var names []string
	for _, d := range Drivers() {
		names = append(names, d.Name+" "+d.Usage)
	}
	if diff := cmp.Diff([]string{"alsa alsa[:DEVICE]", "sim sim[?record=FILE]"}, names); diff != "" {
		t.Errorf("Drivers (-want +got):\n%s", diff)
	}
	if err := Register(Driver{Name: "sim", Open: openSim}); err == nil {
		t.Error("registering sim twice succeeded")
	}
}

func TestResolveAuto(t *testing.T) {
	card := " 0 [Headphones     ]: bcm2835_headpho - bcm2835 Headphones\n                      bcm2835 Headphones\n"
	for _, tc := range []struct {
		name  string
		aplay bool
		cards *string
		want  string
	}{
		{"card and aplay", true, &card, "alsa:default"},
		{"no aplay", false, &card, "sim"},
		{"no /proc/asound", true, nil, "sim"},
		{"no soundcards", true, ptr("--- no soundcards ---\n"), "sim"},
		{"empty cards", true, ptr("\n"), "sim"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fakeALSA(t, tc.aplay, tc.cards)
			got, err := Resolve("auto")
			if err != nil || got != tc.want {
				t.Errorf("Resolve(auto) = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	fakeALSA(t, true, ptr("0 [Device]: USB-Audio\n"))
	for _, tc := range []struct{ spec, device string }{
		{"alsa", "default"},
		{"alsa:", "default"},
		{"alsa:default", "default"},
		{"alsa:hw:1,0", "hw:1,0"},
		{"alsa:plughw:CARD=Device,DEV=0", "plughw:CARD=Device,DEV=0"},
		{"auto", "default"},
	} {
		p, err := Open(tc.spec)
		if err != nil {
			t.Errorf("Open(%q): %v", tc.spec, err)
			continue
		}
		if a, ok := p.(*ALSA); !ok || a.Device() != tc.device {
			t.Errorf("Open(%q) = %#v, want ALSA on %q", tc.spec, p, tc.device)
		}
		p.Close()
	}

	p, err := Open("sim")
	if s, ok := p.(*Sim); err != nil || !ok || s.record != "" {
		t.Errorf("Open(sim) = %#v, %v", p, err)
	}
	p, err = Open("sim?record=/tmp/x.wav")
	if s, ok := p.(*Sim); err != nil || !ok || s.record != "/tmp/x.wav" {
		t.Errorf("Open(sim?record=...) = %#v, %v", p, err)
	}
}

func TestOpenAutoFallsBack(t *testing.T) {
	fakeALSA(t, false, nil)
	var notice bytes.Buffer
	registry.SetNotice(&notice)
	t.Cleanup(func() { registry.SetNotice(os.Stderr) })
	p, err := Open("auto")
	if _, ok := p.(*Sim); err != nil || !ok {
		t.Fatalf("Open(auto) = %#v, %v; want the simulated player", p, err)
	}
	if !strings.Contains(notice.String(), `using the simulated "sim" driver`) {
		t.Errorf("notice %q", notice.String())
	}
}

func TestOpenErrors(t *testing.T) {
	fakeALSA(t, false, nil)
	for _, tc := range []struct{ spec, want string }{
		{"alsa", `audio: alsa: aplay not found (install Debian package alsa-utils): exec: "aplay": executable file not found in $PATH (spec "alsa")`},
		{"sim:loud", `audio: sim: unexpected argument "loud" (accepted: sim, sim?record=FILE) (spec "sim:loud")`},
		{"sim?volume=3", `audio: sim: unknown option "volume" (accepted: record) (spec "sim?volume=3")`},
		{"sim?record=", `audio: sim: empty record file name (spec "sim?record=")`},
		{"pulse", `audio: unknown driver "pulse"; accepted forms: auto, alsa[:DEVICE], sim[?record=FILE]`},
	} {
		_, err := Open(tc.spec)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Open(%q):\n got %v\nwant %s", tc.spec, err, tc.want)
		}
	}
	_, err := Open("alsa")
	if !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("Open(alsa) without aplay: %v does not wrap exec.ErrNotFound", err)
	}
}
