package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFlags(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string // substring of the error; "" = valid
	}{
		{[]string{"-data", "x"}, nil, ""},
		{[]string{"-data", "x", "-daily-limit", "0"}, nil, "-daily-limit must be at least 1"},
		{[]string{"-data", "x", "-min-interval", "-1s"}, nil, "-min-interval must not be negative"},
		{[]string{"-data", "x", "-open-time", "0s"}, nil, "-open-time must be between"},
		{[]string{"-data", "x", "-tls-cert", "c.pem"}, nil, "-tls-cert and -tls-key go together"},
		{[]string{"-data", "x", "-daily-limit", "many"}, nil, "invalid value"},
		{[]string{"-data", "x", "-bogus"}, nil, "flag provided but not defined"},
		{[]string{"-data", "x", "extra"}, nil, "unexpected arguments"},
		{[]string{"-data", "x"}, map[string]string{"TREATFEEDER_DAILY_LIMIT": "lots"}, "TREATFEEDER_DAILY_LIMIT: parse error"},
	} {
		env = tc.env
		_, err := parseFlags(tc.args, getenv, io.Discard)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("parseFlags(%q, env %v) = %v, want %q", tc.args, tc.env, err, tc.want)
		}
		if err != nil && tc.env != nil && strings.Contains(err.Error(), "lots") {
			t.Errorf("error %v shows an environment value (it may be a secret)", err)
		}
		var ue usageError
		if err != nil && !errors.As(err, &ue) {
			t.Errorf("error %v is not a usage error", err)
		}
	}
	// Environment sets defaults; flags win.
	env = map[string]string{"TREATFEEDER_DAILY_LIMIT": "4", "TREATFEEDER_MIN_INTERVAL": "1m", "TREATFEEDER_ADDR": ":9000"}
	o, err := parseFlags([]string{"-data", "x", "-daily-limit", "5"}, getenv, io.Discard)
	if err != nil || o.dailyLimit != 5 || o.minInterval != time.Minute || o.addr != ":9000" {
		t.Errorf("env + flags = %+v, %v", o, err)
	}
}

func TestRunUsageErrors(t *testing.T) {
	getenv := func(string) string { return "" }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-servo", "nope"}, `-servo: servo: unknown driver "nope"`},
		{[]string{"-camera", "nope"}, `-camera: camera: unknown driver "nope"`},
		{[]string{"-audio", "nope"}, `-audio: audio: unknown driver "nope"`},
		{[]string{"-open-angle", "wide"}, `-open-angle: servo: angle "wide"`},
		{[]string{"-servo", "sim", "-open-angle", "270"}, "-open-angle: servo: angle out of range"},
		{[]string{"-sound", "/nonexistent.wav"}, "-sound: audio: wav:"},
	} {
		var stderr bytes.Buffer
		args := append([]string{"-data", t.TempDir(), "-addr", "127.0.0.1:0"}, tc.args...)
		if code := run(context.Background(), args, getenv, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("run(%q) = %d, stderr %q; want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

func TestGeneratedPassword(t *testing.T) {
	dir := t.TempDir()
	p1, gen, err := loadPassword(dir, "")
	if err != nil || !gen || len(p1) != 12 {
		t.Fatalf("first start: %q %v %v", p1, gen, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "password"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v %v", fi, err)
	}
	p2, gen, err := loadPassword(dir, "")
	if err != nil || gen || p2 != p1 {
		t.Errorf("second start: %q %v %v", p2, gen, err)
	}
	if p, gen, _ := loadPassword(dir, "given"); p != "given" || gen {
		t.Errorf("configured password: %q %v", p, gen)
	}
}

// TestProcessSIGTERMDuringDispense builds the real binary, starts it on
// simulated devices, asks for a treat and sends SIGTERM while the hopper is
// open. The process must close the hopper, log it, and exit 0.
func TestProcessSIGTERMDuringDispense(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(t.TempDir(), "treatfeeder")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data := t.TempDir()
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-data", data, "-servo", "sim", "-camera", "sim:64x48@5",
		"-audio", "sim", "-password", "pw", "-token", "tok", "-open-time", "5s")
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir())
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	sc := bufio.NewScanner(stdout)
	var base string
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "treat feeder on "); ok {
			base = strings.TrimSuffix(u, "/")
			break
		}
	}
	if base == "" {
		t.Fatalf("no URL printed; stderr:\n%s", stderr.String())
	}
	go io.Copy(io.Discard, stdout)

	api := func(method, path string) (int, map[string]any) {
		req, _ := http.NewRequest(method, base+path, nil)
		req.Header.Set("Authorization", "Bearer tok")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil
		}
		defer res.Body.Close()
		var m map[string]any
		json.NewDecoder(res.Body).Decode(&m)
		return res.StatusCode, m
	}
	treat := make(chan int, 1)
	go func() { code, _ := api("POST", "/api/treat"); treat <- code }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, st := api("GET", "/api/status"); st != nil && st["hopper"] == "open" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("hopper never opened")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Fatalf("exit: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("process did not exit after SIGTERM; stderr:\n%s", stderr.String())
	}
	<-treat // the request ends one way or another; what counts is the log

	b, err := os.ReadFile(filepath.Join(data, "events.log"))
	if err != nil {
		t.Fatal(err)
	}
	var events []Event
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("bad log line %q: %v", line, err)
		}
		events = append(events, e)
	}
	types := make([]string, len(events))
	for i, e := range events {
		types[i] = e.Type
	}
	want := "startup_close open close close"
	if got := strings.Join(types, " "); got != want {
		t.Fatalf("log events %q, want %q:\n%s", got, want, b)
	}
	if events[2].Dispense != 1 || events[2].Error != "" || events[3].Note != "hopper closed at shutdown" || events[3].Error != "" {
		t.Errorf("close events:\n%s", b)
	}
	if !strings.Contains(stderr.String(), "hopper closed") {
		t.Errorf("stderr does not report the hopper closed:\n%s", stderr.String())
	}
	if strings.Contains(stderr.String(), "tok") && strings.Contains(stderr.String(), "Bearer") || strings.Contains(stderr.String(), "pw ") {
		t.Errorf("a secret reached the log:\n%s", stderr.String())
	}
}
