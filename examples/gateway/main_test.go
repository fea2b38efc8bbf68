package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
		{[]string{"-data", "x", "-interval", "1s", "-inverter", "sim", "-inverter", "sunspec+tcp://10.0.0.5:502?unit=1"}, nil, ""},
		{[]string{"-data", "x", "-interval", "500ms"}, nil, "-interval must be between 1s"},
		{[]string{"-data", "x", "-interval", "often"}, nil, "invalid value"},
		{[]string{"-data", "x", "-inverter", "nosuch:x"}, nil, `-inverter "nosuch:x"`},
		{[]string{"-data", "x", "-inverter", "auto"}, nil, `"auto" is not allowed`},
		{[]string{"-data", "x", "-http-url", "ftp://x"}, nil, "-http-url: want a http:// or https:// URL"},
		{[]string{"-data", "x", "-mqtt-url", "tcp://broker"}, nil, "-mqtt-url: want a mqtt:// or mqtts:// URL"},
		{[]string{"-data", "x", "-token", "short"}, nil, "-token must be at least 16"},
		{[]string{"-data", "x", "-bogus"}, nil, "flag provided but not defined"},
		{[]string{"-data", "x", "extra"}, nil, "unexpected arguments"},
		{[]string{"-data", ""}, nil, "-data is empty"},
		{[]string{"-data", "x"}, map[string]string{"GATEWAY_INTERVAL": "soon"}, `GATEWAY_INTERVAL`},
		{[]string{"-data", "x"}, map[string]string{"GATEWAY_MQTT_URL": "http://x"}, `-mqtt-url`},
	} {
		env = tc.env
		_, err := parseFlags(tc.args, getenv, io.Discard)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("parseFlags(%q, env %v) = %v, want %q", tc.args, tc.env, err, tc.want)
		}
		var ue usageError
		if err != nil && !errors.As(err, &ue) {
			t.Errorf("error %v is not a usage error", err)
		}
	}

	// Environment sets defaults; flags win, the -inverter list as a whole.
	env = map[string]string{"GATEWAY_INTERVAL": "5s", "GATEWAY_ADDR": ":9000", "GATEWAY_INVERTER": "sim?seed=1, sim?seed=2",
		"GATEWAY_MQTT_PASSWORD": "pw", "GATEWAY_DATA": "/d"}
	o, err := parseFlags([]string{"-interval", "2s"}, getenv, io.Discard)
	if err != nil || o.interval != 2*time.Second || o.addr != ":9000" || o.dataDir != "/d" || o.mqttPassword != "pw" ||
		strings.Join(o.inverters, " ") != "sim?seed=1 sim?seed=2" || !o.set["mqtt-password"] || !o.set["inverter"] || o.set["http-url"] {
		t.Errorf("env + flags = %+v, %v", o, err)
	}
	o, err = parseFlags([]string{"-inverter", "sim?seed=3"}, getenv, io.Discard)
	if err != nil || strings.Join(o.inverters, " ") != "sim?seed=3" {
		t.Errorf("-inverter over GATEWAY_INVERTER: %q %v", o.inverters, err)
	}
}

func TestRunExitCodes(t *testing.T) {
	getenv := func(string) string { return "" }
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-interval", "0s"}, 2, "-interval"},
		{[]string{"-key", "nosuch:x"}, 2, "-key"},
		{[]string{"-key", "auto"}, 2, "-key"},
		{[]string{"read"}, 2, "want exactly one device spec"},
		{[]string{"read", "nosuch:x"}, 2, "unknown driver"},
		{[]string{"scan"}, 2, "name hosts"},
		{[]string{"scan", "-ports", "99999", "127.0.0.1"}, 2, "-ports"},
		{[]string{"scan", "10.0.0.0/8"}, 2, "too large"},
		{[]string{"sim-inverter", "-unit", "300"}, 2, "-unit"},
		{[]string{"-h"}, 0, "GATEWAY_MQTT_URL"},
	} {
		var stderr bytes.Buffer
		args := tc.args
		if len(args) == 0 || !strings.Contains("read scan sim-inverter", args[0]) {
			args = append([]string{"-data", t.TempDir(), "-addr", "127.0.0.1:0"}, args...)
		}
		if code := run(context.Background(), args, getenv, io.Discard, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("run(%q) = %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.want)
		}
	}
	// A broken settings file is a configuration error.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, settingsFile), []byte(`{"interval":"1ms"}`), 0o600)
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"-data", dir, "-addr", "127.0.0.1:0"}, getenv, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), "interval") {
		t.Errorf("bad settings file: %d %q", code, stderr.String())
	}
}

func TestReadSubcommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"read", "sim?seed=5&profile=huawei"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("read: %d %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), `"profile": "huawei"`) || !strings.Contains(stdout.String(), `"ac_power_w"`) {
		t.Errorf("read printed %s", stdout.String())
	}
}

func TestStartSettingsPrecedence(t *testing.T) {
	dir := t.TempDir()
	getenv := func(string) string { return "" }
	parse := func(args ...string) *options {
		o, err := parseFlags(append([]string{"-data", dir}, args...), getenv, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	// No file: defaults and one simulated inverter.
	s, changed, err := startSettings(parse())
	if err != nil || !changed || len(s.Devices) != 1 || s.Devices[0].Spec != "sim" || s.Interval.D() != defaultInterval {
		t.Fatalf("fresh start: %+v %v %v", s, changed, err)
	}
	// The file keeps what the API set; flags given override it.
	s.Interval = Duration(3 * time.Second)
	s.Devices = []DeviceConfig{{ID: "roof", Spec: "sim?seed=4"}}
	s.HTTPURL = "http://127.0.0.1:1/in"
	if err := saveSettings(dir, s); err != nil {
		t.Fatal(err)
	}
	s2, changed, err := startSettings(parse())
	if err != nil || changed || s2.Interval.D() != 3*time.Second || s2.Devices[0].ID != "roof" || s2.HTTPURL != s.HTTPURL {
		t.Errorf("restart without flags: %+v %v %v", s2, changed, err)
	}
	s3, changed, err := startSettings(parse("-interval", "7s", "-inverter", "sim?seed=9", "-http-url", ""))
	if err != nil || !changed || s3.Interval.D() != 7*time.Second || len(s3.Devices) != 1 || s3.Devices[0].Spec != "sim?seed=9" || s3.HTTPURL != "" {
		t.Errorf("flags over the file: %+v %v %v", s3, changed, err)
	}
}

func TestGeneratedToken(t *testing.T) {
	dir := t.TempDir()
	t1, gen, err := loadToken(dir, "")
	if err != nil || !gen || len(t1) != 40 {
		t.Fatalf("first start: %q %v %v", t1, gen, err)
	}
	fi, err := os.Stat(filepath.Join(dir, tokenFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi, err)
	}
	t2, gen, err := loadToken(dir, "")
	if err != nil || gen || t2 != t1 {
		t.Errorf("second start: %q %v %v", t2, gen, err)
	}
	if tok, gen, _ := loadToken(dir, "given-token-0123456"); tok != "given-token-0123456" || gen {
		t.Errorf("configured token: %q %v", tok, gen)
	}
}

// buildGateway builds the real binary once per test.
func buildGateway(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gateway")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is a running gateway process.
type proc struct {
	cmd    *exec.Cmd
	base   string
	stderr *syncBuffer
	waited chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startGateway(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir())
	stdout, _ := cmd.StdoutPipe()
	p := &proc{cmd: cmd, stderr: &syncBuffer{}, waited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "gateway on "); ok {
			p.base = strings.TrimSuffix(u, "/")
			break
		}
	}
	if p.base == "" {
		t.Fatalf("no URL printed; stderr:\n%s", p.stderr.String())
	}
	go io.Copy(io.Discard, stdout)
	go func() { p.waited <- cmd.Wait() }()
	return p
}

// TestProcessKill9 runs the built gateway against simulated inverters and
// a receiver that answers slowly, kills it with SIGKILL in the middle of
// deliveries several times, restarts it on the same data dir, and checks
// that no sequence number is missing at the receiver and every signature
// verifies. Finally SIGTERM must stop it cleanly.
func TestProcessKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	t.Parallel()
	bin := buildGateway(t)
	rcv, rsrv := newReceiver(t)
	rcv.delay = func() time.Duration { return time.Duration(100+rand.IntN(300)) * time.Millisecond }
	data := t.TempDir()
	args := []string{"-addr", "127.0.0.1:0", "-data", data, "-interval", "1s", "-token", testToken,
		"-inverter", "sim?seed=1", "-inverter", "sim?seed=2&profile=huawei", "-http-url", rsrv.URL}

	const kills = 4
	var firstKey *ecdsa.PublicKey
	for i := range kills {
		p := startGateway(t, bin, args...)
		if pub := publicKey(t, p.base); i == 0 {
			rcv.setKey(pub)
			firstKey = pub
		} else if !pub.Equal(firstKey) {
			t.Fatal("the device key changed across a restart")
		}
		before := rcv.distinct()
		waitFor(t, 20*time.Second, "deliveries", func() bool { return rcv.distinct() >= before+4 })
		// Kill in the middle of a delivery: the receiver has stored the
		// batch and holds the answer back.
		waitFor(t, 10*time.Second, "a delivery in flight", func() bool { return rcv.inflight.Load() > 0 })
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.waited
	}

	// Last run: let it drain, then stop it properly.
	p := startGateway(t, bin, args...)
	before := rcv.distinct()
	waitFor(t, 30*time.Second, "the backlog to drain", func() bool {
		_, st := apiCall(t, p.base, "GET", "/api/state", nil, "")
		q, _ := st["queue"].(map[string]any)
		return rcv.distinct() >= before+2 && q != nil && num(q["pending"]) == 0
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.waited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\nstderr:\n%s", err, p.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit after SIGTERM; stderr:\n%s", p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "msg=stopped") {
		t.Errorf("stderr does not report a clean stop:\n%s", p.stderr.String())
	}
	if strings.Contains(p.stderr.String(), testToken) {
		t.Errorf("the token reached the log:\n%s", p.stderr.String())
	}

	last := checkNoneLost(t, data, rcv)
	dupes := rcv.check(t, true)
	if last < 10 {
		t.Errorf("only %d readings over %d runs", last, kills+1)
	}
	t.Logf("%d readings over %d SIGKILLs and a SIGTERM; %d arrived more than once (interrupted sends)", last, kills, dupes)
}
