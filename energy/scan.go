package energy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for ScanOptions.
const (
	DefaultScanConcurrency = 16
	DefaultScanTimeout     = 2 * time.Second
	DefaultScanMaxHosts    = 1024
)

// DefaultScanPorts are the ports Scan tries: Modbus TCP (502), its common
// alternatives (1502 SolarEdge and others, 6607 Huawei SmartLogger/SUN2000)
// and Solarman V5 (8899).
var DefaultScanPorts = []int{502, 1502, 6607, SolarmanPort}

// IdentifyFunc tries to identify a device behind rr at unit, for Scan. It
// returns the device's Info (with Profile set to the profile name that
// reads it) or an error when the device is not one it knows. It must only
// read.
type IdentifyFunc func(ctx context.Context, rr RegisterReader, unit uint8) (Info, error)

// ScanOptions configures Scan. The zero value uses the defaults.
type ScanOptions struct {
	// Ports to try on each host (default DefaultScanPorts).
	Ports []int
	// Units are the Modbus unit IDs tried on each open Modbus port, in
	// order, until one is identified (default 1).
	Units []uint8
	// Concurrency bounds the host:port pairs probed at once (default
	// DefaultScanConcurrency).
	Concurrency int
	// Timeout bounds each TCP connect and each Modbus request (default
	// DefaultScanTimeout).
	Timeout time.Duration
	// MaxHosts bounds the hosts after CIDR expansion (default
	// DefaultScanMaxHosts); more is an error, so a typo like /16 does not
	// start a scan of 65536 hosts.
	MaxHosts int
	// Identify lists identifiers tried, in order, on Modbus ports where no
	// SunSpec device answers, so that vendor profiles can recognise their
	// devices by their own serial-number registers. Nil means every
	// built-in profile (ProfileIdentifiers); an empty, non-nil list means
	// SunSpec only.
	Identify []IdentifyFunc
}

// Found is an open port Scan found, identified or not.
type Found struct {
	Host string `json:"host"` // as given, or an address from a CIDR range
	Port int    `json:"port"`
	// Service is "modbus", or "solarman" for the Solarman V5 port, which
	// is reported open without identification (it needs the logger's
	// serial number).
	Service string `json:"service"`
	// Identified reports whether Unit, Info and Spec are set.
	Identified bool  `json:"identified"`
	Unit       uint8 `json:"unit,omitempty"`
	Info       Info  `json:"device"`
	// Spec opens the device with Open, e.g.
	// "sunspec+tcp://192.168.1.20:502?unit=1"; it is built from the
	// profile name Info.Profile.
	Spec string `json:"spec,omitempty"`
}

// Scan probes hosts for inverters: each host and port is tried with a TCP
// connect; open Modbus ports are identified by SunSpec discovery (Info
// from the common model) or else by opts.Identify, on each unit of
// opts.Units. Hosts are IP addresses, names, or IPv4/IPv6 CIDR ranges of at
// most 256 addresses (/24, /120); network and broadcast addresses of IPv4
// ranges are skipped.
//
// The results list open ports only, sorted by host (addresses numerically,
// before names), port and unit. Scan only reads. When ctx ends, Scan stops
// and returns what it found with ctx's error.
func Scan(ctx context.Context, hosts []string, opts ScanOptions) ([]Found, error) {
	if len(opts.Ports) == 0 {
		opts.Ports = DefaultScanPorts
	}
	if len(opts.Units) == 0 {
		opts.Units = []uint8{1}
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultScanConcurrency
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultScanTimeout
	}
	if opts.MaxHosts <= 0 {
		opts.MaxHosts = DefaultScanMaxHosts
	}
	for _, p := range opts.Ports {
		if p < 1 || p > 65535 {
			return nil, fmt.Errorf("energy: scan: bad port %d", p)
		}
	}
	all, err := expandHosts(hosts, opts.MaxHosts)
	if err != nil {
		return nil, err
	}

	var (
		mu    sync.Mutex
		found []Found
		wg    sync.WaitGroup
		sem   = make(chan struct{}, opts.Concurrency)
	)
jobs:
	for _, h := range all {
		for _, p := range opts.Ports {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				break jobs
			}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				fs := scanOne(ctx, h, p, opts)
				mu.Lock()
				found = append(found, fs...)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	sortFound(found)
	if err := ctx.Err(); err != nil {
		return found, fmt.Errorf("energy: scan: %w", err)
	}
	return found, nil
}

// scanOne probes one host:port.
func scanOne(ctx context.Context, host string, port int, opts ScanOptions) []Found {
	hp := net.JoinHostPort(host, strconv.Itoa(port))
	d := net.Dialer{Timeout: opts.Timeout}
	c, err := d.DialContext(ctx, "tcp", hp)
	if err != nil {
		return nil
	}
	c.Close()
	if port == SolarmanPort {
		return []Found{{Host: host, Port: port, Service: "solarman"}}
	}
	for _, unit := range opts.Units {
		if ctx.Err() != nil {
			break
		}
		if f, ok := identify(ctx, hp, unit, opts); ok {
			f.Host, f.Port = host, port
			return []Found{f}
		}
	}
	return []Found{{Host: host, Port: port, Service: "modbus"}}
}

// identify tries SunSpec, then opts.Identify, on one unit. Each unit gets a
// fresh connection whose backoff outlasts the scan, so that once a device
// stops answering, the remaining attempts fail at once instead of each
// waiting for a timeout.
func identify(ctx context.Context, hostport string, unit uint8, opts ScanOptions) (Found, bool) {
	m, err := NewModbus("tcp://"+hostport, ModbusOptions{Timeout: opts.Timeout, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	if err != nil {
		return Found{}, false
	}
	defer m.Close()
	rr := noClose{m}
	spec := func(profile string) string {
		return fmt.Sprintf("%s+tcp://%s?unit=%d", profile, hostport, unit)
	}
	if d, err := OpenSunSpec(ctx, rr, unit, SunSpecOptions{}); err == nil {
		if info, err := d.Info(ctx); err == nil {
			return Found{Service: "modbus", Identified: true, Unit: unit, Info: info, Spec: spec("sunspec")}, true
		}
	}
	ids := opts.Identify
	if ids == nil {
		ids = ProfileIdentifiers()
	}
	for _, id := range ids {
		if id == nil || ctx.Err() != nil {
			continue
		}
		info, err := id(ctx, rr, unit)
		if err == nil && info.Profile != "" {
			return Found{Service: "modbus", Identified: true, Unit: unit, Info: info, Spec: spec(info.Profile)}, true
		}
	}
	return Found{}, false
}

// noClose keeps identifiers from closing the scan's connection.
type noClose struct{ RegisterReader }

func (noClose) Close() error { return nil }

// maxRangeBits bounds CIDR ranges to 256 addresses.
const maxRangeBits = 8

func expandHosts(hosts []string, maxHosts int) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	add := func(h string) error {
		if seen[h] {
			return nil
		}
		if len(out) >= maxHosts {
			return fmt.Errorf("energy: scan: more than %d hosts", maxHosts)
		}
		seen[h] = true
		out = append(out, h)
		return nil
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			return nil, errors.New("energy: scan: empty host")
		}
		if !strings.Contains(h, "/") {
			h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
			if a, err := netip.ParseAddr(h); err == nil {
				h = a.String()
			} else if strings.ContainsAny(h, ":[]") {
				return nil, fmt.Errorf("energy: scan: bad host %q (give hosts without ports; set ScanOptions.Ports)", h)
			}
			if err := add(h); err != nil {
				return nil, err
			}
			continue
		}
		p, err := netip.ParsePrefix(h)
		if err != nil {
			return nil, fmt.Errorf("energy: scan: bad range %q: %w", h, err)
		}
		p = p.Masked()
		hostBits := p.Addr().BitLen() - p.Bits()
		if hostBits > maxRangeBits {
			return nil, fmt.Errorf("energy: scan: range %s is too large (at most /%d, 256 addresses)", h, p.Addr().BitLen()-maxRangeBits)
		}
		first, last := p.Addr(), p.Addr()
		for range (1 << hostBits) - 1 {
			last = last.Next()
		}
		if p.Addr().Is4() && hostBits >= 2 {
			// Skip the network and broadcast addresses.
			first, last = first.Next(), last.Prev()
		}
		for a := first; a.IsValid() && a.Compare(last) <= 0; a = a.Next() {
			if err := add(a.String()); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func sortFound(fs []Found) {
	sort.Slice(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Host != b.Host {
			aa, aerr := netip.ParseAddr(a.Host)
			ba, berr := netip.ParseAddr(b.Host)
			switch {
			case aerr == nil && berr == nil:
				return aa.Less(ba)
			case aerr == nil:
				return true
			case berr == nil:
				return false
			}
			return a.Host < b.Host
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.Unit < b.Unit
	})
}
