package energy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// closedPort returns a loopback port nobody listens on.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := portOf(t, l.Addr().String())
	l.Close()
	return p
}

func TestScan(t *testing.T) {
	// A SunSpec inverter on unit 2.
	ss := newFakeDevice()
	ss.set(2, 40000, threePhase(t))
	ssSrv := startServer(t, ss, 0)
	// A Modbus device without SunSpec that a profile recognises by its
	// serial-number register.
	vendor := newFakeDevice()
	vendor.set(1, 30000, []uint16{0x4142, 0x4344})
	vendorSrv := startServer(t, vendor, 0)
	// Something that accepts connections and hangs up.
	other := rawServer(t, func(c net.Conn, n int) {})
	closed := closedPort(t)

	identifyVendor := func(ctx context.Context, rr RegisterReader, unit uint8) (Info, error) {
		r, err := rr.ReadRegisters(ctx, unit, 3, 30000, 2)
		if err != nil {
			return Info{}, err
		}
		return Info{Manufacturer: "Acme", Serial: fmt.Sprintf("%c%c%c%c", r[0]>>8, r[0]&0xff, r[1]>>8, r[1]&0xff), Profile: "acme", Kind: "inverter"}, nil
	}
	ports := []int{vendorSrv.port(), ssSrv.port(), portOf(t, other), closed}
	found, err := Scan(context.Background(), []string{"127.0.0.1"}, ScanOptions{
		Ports: ports, Units: []uint8{1, 2}, Timeout: 500 * time.Millisecond,
		Identify: []IdentifyFunc{nil, identifyVendor},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{
		ssSrv.port():     fmt.Sprintf("2 sunspec+tcp://127.0.0.1:%d?unit=2 Pikit SIM0001", ssSrv.port()),
		vendorSrv.port(): fmt.Sprintf("1 acme+tcp://127.0.0.1:%d?unit=1 Acme ABCD", vendorSrv.port()),
		portOf(t, other): "0   ",
	}
	if len(found) != len(want) {
		t.Fatalf("found %+v", found)
	}
	for i, f := range found {
		if f.Host != "127.0.0.1" || f.Service != "modbus" {
			t.Errorf("found %+v", f)
		}
		if got := fmt.Sprintf("%d %s %s %s", f.Unit, f.Spec, f.Info.Manufacturer, f.Info.Serial); got != want[f.Port] {
			t.Errorf("port %d: %q, want %q", f.Port, got, want[f.Port])
		}
		if f.Identified != (f.Spec != "") {
			t.Errorf("port %d: identified %v with spec %q", f.Port, f.Identified, f.Spec)
		}
		if i > 0 && found[i-1].Port > f.Port {
			t.Error("results not sorted by port")
		}
	}
	// The spec found opens the device.
	for _, f := range found {
		if f.Info.Profile == "sunspec" {
			inv, err := Open(f.Spec)
			if err != nil {
				t.Fatal(err)
			}
			r, err := inv.Read(context.Background())
			inv.Close()
			if err != nil || r.ACPower != Some(5432) {
				t.Errorf("read %s: %v %v", f.Spec, r.ACPower, err)
			}
		}
	}
}

func TestScanSolarmanPort(t *testing.T) {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", SolarmanPort))
	if err != nil {
		t.Skipf("port %d busy: %v", SolarmanPort, err)
	}
	defer l.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	found, err := Scan(context.Background(), []string{"127.0.0.1"}, ScanOptions{Ports: []int{SolarmanPort}})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].Service != "solarman" || found[0].Identified {
		t.Fatalf("found %+v", found)
	}
}

func TestScanConcurrency(t *testing.T) {
	var ports []int
	for range 6 {
		ports = append(ports, portOf(t, rawServer(t, func(c net.Conn, n int) {})))
	}
	var inFlight, peak atomic.Int32
	slow := func(ctx context.Context, rr RegisterReader, unit uint8) (Info, error) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
		inFlight.Add(-1)
		return Info{}, errors.New("not mine")
	}
	found, err := Scan(context.Background(), []string{"127.0.0.1"}, ScanOptions{Ports: ports, Concurrency: 2, Identify: []IdentifyFunc{slow}})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 6 {
		t.Errorf("found %d", len(found))
	}
	if p := peak.Load(); p != 2 {
		t.Errorf("peak concurrency %d, want 2", p)
	}
}

func TestScanCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Scan(ctx, []string{"127.0.0.1"}, ScanOptions{Ports: []int{closedPort(t)}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

func TestExpandHosts(t *testing.T) {
	got, err := expandHosts([]string{"10.0.0.0/30", "10.0.0.1", " host.lan ", "[::1]", "fd00::/127"}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[10.0.0.1 10.0.0.2 host.lan ::1 fd00:: fd00::1]" {
		t.Errorf("got %v", got)
	}
	got, _ = expandHosts([]string{"192.168.1.77/24"}, 1000)
	if len(got) != 254 || got[0] != "192.168.1.1" || got[253] != "192.168.1.254" {
		t.Errorf("/24: %d hosts, %v..%v", len(got), got[0], got[len(got)-1])
	}
	for in, want := range map[string]string{
		"10.0.0.0/23":  "too large (at most /24",
		"fd00::/119":   "too large (at most /120",
		"10.0.0.0/33":  "bad range",
		"1.2.3.4:502":  "without ports",
		"":             "empty host",
		"10.0.0.0/28,": "bad range",
	} {
		if _, err := expandHosts([]string{in}, 1000); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("expandHosts(%q) = %v, want %q", in, err, want)
		}
	}
	if _, err := expandHosts([]string{"10.0.0.0/24"}, 100); err == nil || !strings.Contains(err.Error(), "more than 100 hosts") {
		t.Errorf("cap: %v", err)
	}
	if _, err := Scan(context.Background(), []string{"127.0.0.1"}, ScanOptions{Ports: []int{70000}}); err == nil {
		t.Error("port 70000 accepted")
	}
}

func TestSortFound(t *testing.T) {
	fs := []Found{
		{Host: "zeta.lan", Port: 502}, {Host: "10.0.0.10", Port: 502}, {Host: "10.0.0.9", Port: 1502},
		{Host: "10.0.0.9", Port: 502, Unit: 2}, {Host: "10.0.0.9", Port: 502, Unit: 1}, {Host: "alpha.lan", Port: 502},
	}
	sortFound(fs)
	var got []string
	for _, f := range fs {
		got = append(got, fmt.Sprintf("%s:%d/%d", f.Host, f.Port, f.Unit))
	}
	if s := strings.Join(got, " "); s != "10.0.0.9:502/1 10.0.0.9:502/2 10.0.0.9:1502/0 10.0.0.10:502/0 alpha.lan:502/0 zeta.lan:502/0" {
		t.Errorf("order %s", s)
	}
}
