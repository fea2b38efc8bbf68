package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pikit/pikit/internal/lircdtest"
	"github.com/pikit/pikit/irlamp"
	"github.com/pikit/pikit/octopus/octopustest"
)

// lircdConf is the 24-key remote in NEC form, from irlamp's test data.
const lircdConf = "../../irlamp/testdata/lircd_LED_24_KEY.conf"

// keyOf decodes a code lircd transmitted into the 24-key remote's key.
func keyOf(t *testing.T, frame []uint32) string {
	t.Helper()
	addr, cmd, err := irlamp.DecodeNEC(frame)
	if err != nil {
		t.Fatalf("lircd sent no NEC code: %v: %v", err, frame)
	}
	r := irlamp.LED24Key()
	for _, k := range r.Keys() {
		p, _ := r.Pulses(k)
		if a, c, err := irlamp.DecodeNEC(p); err == nil && a == addr && c == cmd {
			return k
		}
	}
	t.Fatalf("lircd sent address %#04x command %#02x: no key of the 24-key remote", addr, cmd)
	return ""
}

// TestLircdRealWholeProgram runs the whole program with -lamp lircd:<socket>
// against the real lircd (file driver) and a fake Octopus server whose
// latest deployment failed: the pulses lircd writes must decode to ON and
// RED (command 0x04), each sent twice, and to OFF when the program stops.
func TestLircdRealWholeProgram(t *testing.T) {
	d := lircdtest.Start(t, lircdtest.Options{Conf: lircdConf})
	s := newOctopus(t)
	apply(t, s, "Website", "Production", octopustest.Phase{Release: "1.5.0", State: octopustest.StateExecuting, Step: "Run smoke tests"})
	apply(t, s, "Website", "Production", octopustest.Phase{State: octopustest.StateFailed})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	args := []string{"-octopus-url", s.URL, "-project", "Website", "-environment", "Production", "-poll", "100ms",
		"-lamp", "lircd:" + d.Sock, "-refresh", "0"}
	env := map[string]string{"OCTOPUS_API_KEY": octopustest.DefaultAPIKey}
	go func() { done <- run(ctx, args, func(k string) string { return env[k] }, &stdout, &stderr) }()

	frames := d.WaitAtLeast(4, wait)
	var keys []string
	for _, f := range frames {
		keys = append(keys, keyOf(t, f))
	}
	if got := strings.Join(keys, " "); got != "ON ON RED RED" {
		t.Fatalf("lircd transmitted %s, want ON ON RED RED; stdout:\n%s\nstderr:\n%s", got, stdout.String(), stderr.String())
	}
	if _, cmd, _ := irlamp.DecodeNEC(frames[2]); cmd != 0x04 {
		t.Errorf("RED is command %#02x, want 0x04", cmd)
	}
	// The program prints the change once lircd has confirmed the codes.
	waitFor(t, wait, "the change printed", func() bool {
		return strings.Contains(stdout.String(), "Failed (Website → Production 1.5.0) → RED")
	})

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(wait):
		t.Fatal("program did not stop")
	}
	frames = d.WaitFrames(6)
	if a, b := keyOf(t, frames[4]), keyOf(t, frames[5]); a != "OFF" || b != "OFF" {
		t.Errorf("on stopping lircd transmitted %s %s, want OFF OFF", a, b)
	}
	if strings.Contains(stdout.String()+stderr.String(), octopustest.DefaultAPIKey) {
		t.Error("the API key was printed")
	}
}
