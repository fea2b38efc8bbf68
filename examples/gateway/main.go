// Command gateway is a Raspberry Pi energy gateway: it reads solar
// inverters and energy meters (package energy), signs what it read with the
// device's key (energy/identity), keeps every reading on disk until each
// configured destination confirmed it (energy/store), delivers by HTTP and
// MQTT (energy/sink), and serves a local REST API.
//
//	go run ./examples/gateway        # a simulated inverter, API on http://localhost:8081
//
// Subcommands:
//
//	gateway read SPEC               one reading as JSON
//	gateway scan HOSTS...           look for Modbus devices (SunSpec identified)
//	gateway sim-inverter [flags]    the simulated inverter on its own
//
// See README.md beside this file for the flags, the API, the JWT batch
// format and a systemd unit.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pikit/pikit/energy"
	"github.com/pikit/pikit/energy/identity"
	"github.com/pikit/pikit/energy/siminverter"
	"github.com/pikit/pikit/internal/flagenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// usageError is a bad flag, argument or setting: exit status 2.
type usageError struct{ error }

// specList is the repeatable -inverter flag.
type specList []string

func (l *specList) String() string { return strings.Join(*l, " ") }

// Set adds one spec; several may be given at once separated by spaces or
// commas (GATEWAY_INVERTER="sim sunspec+tcp://10.0.0.5").
func (l *specList) Set(v string) error {
	parts := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	if len(parts) == 0 {
		return errors.New("empty inverter spec")
	}
	*l = append(*l, parts...)
	return nil
}

// options are the parsed command line.
type options struct {
	addr, dataDir, key, token                string
	inverters                                specList
	interval                                 time.Duration
	httpURL, mqttURL, mqttUser, mqttPassword string
	set                                      map[string]bool // flags given on the command line or in the environment
}

func envName(flagName string) string { return flagenv.Name("GATEWAY", flagName) }

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	o := &options{set: map[string]bool{}}
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", ":8081", "address the REST API listens on")
	fs.StringVar(&o.dataDir, "data", flagenv.StateDir(getenv, "pikit-gateway"), "data `dir`: settings, queue, token, key file")
	fs.Var(&o.inverters, "inverter", "device `spec` to read (repeatable; default sim, an in-process simulated inverter), e.g. sunspec+tcp://192.168.1.20:502?unit=1")
	fs.StringVar(&o.key, "key", "", "device identity: file:PATH (default file:DATA/device-key.pem), atecc608:/dev/i2c-1, sim")
	fs.DurationVar(&o.interval, "interval", defaultInterval, "time between reads of each device (at least 1s)")
	fs.StringVar(&o.httpURL, "http-url", "", "URL that receives signed JWT batches by POST")
	fs.StringVar(&o.mqttURL, "mqtt-url", "", "MQTT broker, mqtt://HOST[:1883] or mqtts://HOST[:8883]")
	fs.StringVar(&o.mqttUser, "mqtt-user", "", "MQTT user name")
	fs.StringVar(&o.mqttPassword, "mqtt-password", "", "MQTT password (prefer GATEWAY_MQTT_PASSWORD: flags show in ps)")
	fs.StringVar(&o.token, "token", "", "bearer token for the mutating API (default: generated at first start, stored in the data dir)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: gateway [flags]\n       gateway read SPEC\n       gateway scan HOSTS...\n       gateway sim-inverter [flags]\n\nEvery flag can also be set with %s<NAME> (e.g. %s); flags win.\n\n", "GATEWAY_", envName("mqtt-url"))
		fs.PrintDefaults()
	}

	// Environment variables GATEWAY_<NAME> set defaults; flags win.
	fromEnv, err := flagenv.Apply(fs, "GATEWAY", getenv)
	if err != nil {
		return nil, usageError{err}
	}
	for _, name := range fromEnv {
		o.set[name] = true
	}
	envInverters := len(o.inverters)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if envInverters > 0 && len(o.inverters) > envInverters {
		// Flags win over the environment for the list as a whole.
		o.inverters = o.inverters[envInverters:]
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected arguments %q (subcommands read, scan and sim-inverter come first)", fs.Args())}
	}
	switch {
	case o.interval < minInterval || o.interval > maxInterval:
		return nil, usageError{fmt.Errorf("-interval must be between %s and %s, got %s", minInterval, maxInterval, o.interval)}
	case o.dataDir == "":
		return nil, usageError{errors.New("-data is empty and no state directory could be found")}
	case strings.ContainsAny(o.token, " \t\r\n"):
		return nil, usageError{errors.New("-token must not contain white space")}
	case o.set["token"] && len(o.token) < 16:
		return nil, usageError{errors.New("-token must be at least 16 characters")}
	}
	if err := checkURL("-http-url", o.httpURL, "http", "https"); err != nil {
		return nil, usageError{err}
	}
	if err := checkURL("-mqtt-url", o.mqttURL, "mqtt", "mqtts"); err != nil {
		return nil, usageError{err}
	}
	for i, spec := range o.inverters {
		d := DeviceConfig{ID: fmt.Sprintf("inv%d", i+1), Spec: spec}
		if err := d.validate(""); err != nil {
			var fe *fieldError
			if errors.As(err, &fe) {
				err = fe.Err
			}
			return nil, usageError{fmt.Errorf("-inverter %q: %v", spec, err)}
		}
	}
	return o, nil
}

// run is main without the process; it returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "read":
			return cmdRead(ctx, args[1:], stdout, stderr)
		case "scan":
			return cmdScan(ctx, args[1:], stdout, stderr)
		case "sim-inverter":
			return siminverter.Main(ctx, args[1:], stdout, stderr)
		}
	}
	o, err := parseFlags(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "gateway:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	code, err := serve(ctx, o, log, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "gateway:", err)
	}
	return code
}

// startSettings merges the settings file with the flags: a flag (or its
// GATEWAY_ variable) given at start overrides the file and is written back
// to it; what neither gives keeps its default. With no file and no
// -inverter, the gateway reads one simulated inverter.
func startSettings(o *options) (s Settings, changed bool, err error) {
	s, exists, err := loadSettings(o.dataDir)
	if err != nil {
		return s, false, err
	}
	before, _ := json.Marshal(s)
	if o.set["interval"] || !exists {
		s.Interval = Duration(o.interval)
	}
	if o.set["inverter"] {
		s.Devices = make([]DeviceConfig, len(o.inverters))
		for i, spec := range o.inverters {
			s.Devices[i] = DeviceConfig{ID: fmt.Sprintf("inv%d", i+1), Spec: spec}
		}
	} else if !exists {
		s.Devices = []DeviceConfig{{ID: "inv1", Spec: "sim"}}
	}
	for _, f := range []struct {
		name string
		dst  *string
		v    string
	}{{"http-url", &s.HTTPURL, o.httpURL}, {"mqtt-url", &s.MQTTURL, o.mqttURL}, {"mqtt-user", &s.MQTTUser, o.mqttUser}, {"mqtt-password", &s.MQTTPassword, o.mqttPassword}} {
		if o.set[f.name] {
			*f.dst = f.v
		}
	}
	if err := s.validate(); err != nil {
		return s, false, err
	}
	after, _ := json.Marshal(s)
	return s, !exists || string(before) != string(after), nil
}

// openIdentity opens the -key identity; the default is the key file in the
// data dir (created at first start).
func openIdentity(spec, dataDir string) (identity.Identity, error) {
	if spec == "" {
		spec = "file:" + filepath.Join(dataDir, identity.DefaultKeyFile)
	}
	if _, err := identity.Resolve(spec); err != nil {
		return nil, usageError{fmt.Errorf("-key: %w", err)}
	}
	return identity.Open(spec)
}

func serve(ctx context.Context, o *options, log *slog.Logger, stdout io.Writer) (int, error) {
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return 1, fmt.Errorf("data dir: %w", err)
	}
	set, changed, err := startSettings(o)
	if err != nil {
		return 2, fmt.Errorf("settings: %w", err)
	}
	if changed {
		if err := saveSettings(o.dataDir, set); err != nil {
			return 1, fmt.Errorf("saving settings: %w", err)
		}
	}
	id, err := openIdentity(o.key, o.dataDir)
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			return 2, err
		}
		return 1, fmt.Errorf("-key: %w", err)
	}
	defer id.Close()
	token, generated, err := loadToken(o.dataDir, o.token)
	if err != nil {
		return 1, err
	}

	gctx, cancelGateway := context.WithCancel(context.Background())
	defer cancelGateway()
	g, err := newGateway(gctx, gatewayConfig{DataDir: o.dataDir, Settings: set, ID: id, Log: log})
	if err != nil {
		return 1, err
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		g.close()
		return 1, err
	}
	g.start()

	fmt.Fprintf(stdout, "gateway on %s\n", displayURL(ln.Addr()))
	fmt.Fprintf(stdout, "device serial %s (key %s)\n", id.Serial(), id.KeyType())
	switch {
	case generated:
		fmt.Fprintf(stdout, "token: %s (generated; stored in %s, shown only this once)\n", token, filepath.Join(o.dataDir, tokenFile))
	case o.token == "":
		fmt.Fprintf(stdout, "token: stored in %s\n", filepath.Join(o.dataDir, tokenFile))
	}
	for _, d := range set.Devices {
		fmt.Fprintf(stdout, "device %s: %s every %s\n", d.ID, d.Spec, effectiveInterval(d, set))
	}
	log.Info("started", "data", o.dataDir, "devices", len(set.Devices), "interval", set.Interval.D().String(),
		"http_sink", set.HTTPURL != "", "mqtt_sink", set.MQTTURL != "")

	srv := newServer(g, newAuth(token), log)
	baseCtx, cancelRequests := context.WithCancel(context.Background())
	defer cancelRequests()
	hs := &http.Server{
		Handler:           srv.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      3 * time.Minute, // a scan may take a while
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()

	code := 0
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		log.Error("server failed", "err", err)
		code = 1
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cancelRequests()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("http shutdown", "err", err)
	}
	// Stop reading, stop delivering (what is in flight is sent again at
	// the next start), close the queue.
	cancelGateway()
	if err := g.close(); err != nil {
		log.Error("closing the queue", "err", err)
		code = 1
	}
	log.Info("stopped")
	return code, nil
}

func effectiveInterval(d DeviceConfig, s Settings) time.Duration {
	if d.Interval != 0 {
		return d.Interval.D()
	}
	return s.Interval.D()
}

// displayURL turns a listen address into one a person can open.
func displayURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String() + "/"
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// cmdRead is "gateway read SPEC": one reading as JSON.
func cmdRead(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gateway read", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 15*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gateway read [-timeout 15s] SPEC\n\ne.g. gateway read sunspec+tcp://192.168.1.20:502?unit=1")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "gateway read: want exactly one device spec")
		return 2
	}
	spec := fs.Arg(0)
	if _, err := energy.Resolve(spec); err != nil {
		fmt.Fprintln(stderr, "gateway read:", err)
		return 2
	}
	inv, err := energy.Open(spec)
	if err != nil {
		fmt.Fprintln(stderr, "gateway read:", err)
		return 1
	}
	defer inv.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	r, err := inv.Read(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "gateway read:", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return 1
	}
	return 0
}

// cmdScan is "gateway scan HOSTS...": open Modbus ports and identified
// devices, as JSON.
func cmdScan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gateway scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ports := fs.String("ports", "", "comma-separated ports (default 502,1502,6607,8899)")
	units := fs.String("units", "1", "comma-separated Modbus unit ids to try")
	timeout := fs.Duration("timeout", energy.DefaultScanTimeout, "per connect and request")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gateway scan [-ports P,P] [-units U,U] [-timeout 2s] HOST|CIDR...\n\ne.g. gateway scan 192.168.1.0/24")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "gateway scan: name hosts or ranges, e.g. 192.168.1.0/24")
		return 2
	}
	opts := energy.ScanOptions{Timeout: *timeout}
	parse := func(name, v string, hi int, add func(int)) bool {
		if v == "" {
			return true
		}
		for _, p := range strings.Split(v, ",") {
			var n int
			if _, err := fmt.Sscanf(strings.TrimSpace(p), "%d", &n); err != nil || n < 0 || n > hi {
				fmt.Fprintf(stderr, "gateway scan: -%s: bad value %q\n", name, p)
				return false
			}
			add(n)
		}
		return true
	}
	if !parse("ports", *ports, 65535, func(n int) { opts.Ports = append(opts.Ports, n) }) ||
		!parse("units", *units, 247, func(n int) { opts.Units = append(opts.Units, uint8(n)) }) {
		return 2
	}
	found, err := energy.Scan(ctx, fs.Args(), opts)
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(stderr, "gateway scan:", err)
		return 2
	}
	if found == nil {
		found = []energy.Found{}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.Encode(found)
	if err != nil {
		return 1
	}
	return 0
}

// localSubnets returns the /24 (or smaller) IPv4 networks of the machine's
// up, non-loopback interfaces: what a scan without hosts probes.
func localSubnets() []string {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok || !ip.Unmap().Is4() || ip.IsLinkLocalUnicast() {
				continue
			}
			ones, _ := ipn.Mask.Size()
			p := netip.PrefixFrom(ip.Unmap(), max(ones, 24)).Masked().String()
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}
