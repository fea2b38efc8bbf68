// Command treatfeeder is a remote treat feeder for a Raspberry Pi: a web page
// with a live camera picture, a button that gives the dog a treat (a servo
// opens a hopper, holds it open, closes it) and a button that plays a sound
// to call the dog.
//
//	go run ./examples/treatfeeder        # simulated devices, http://localhost:8080
//
// It is safe by design: one dispense at a time, a daily limit and a minimum
// interval that survive restarts, and a hopper that is always closed again,
// after servo errors, cancelled requests, at start-up and on SIGINT/SIGTERM.
// Every page and API needs a password login or a bearer token. See README.md
// beside this file for the flags, wiring and a systemd unit.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pikit/pikit/audio"
	"github.com/pikit/pikit/camera"
	"github.com/pikit/pikit/internal/flagenv"
	"github.com/pikit/pikit/servo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// options are the parsed command line.
type options struct {
	addr, servoSpec, cameraSpec, audioSpec, dataDir string
	password, token                                 string
	dailyLimit                                      int
	minInterval, openTime                           time.Duration
	openAngle, closedAngle                          string
	sound, tlsCert, tlsKey                          string
}

// usageError is a bad flag or spec: exit status 2.
type usageError struct{ error }

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("treatfeeder", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", ":8080", "address to listen on")
	fs.StringVar(&o.servoSpec, "servo", "auto", "servo driver spec (sim, sysfs:pwmchip0/0, pca9685:/dev/i2c-1@0x40/0, gpio:GPIO18, auto)")
	fs.StringVar(&o.cameraSpec, "camera", "auto", `camera driver spec (sim:640x480@30, "exec:rpicam-vid -t 0 --codec mjpeg -o -", v4l2:/dev/video0, dir:PATH@FPS, auto)`)
	fs.StringVar(&o.audioSpec, "audio", "auto", "audio driver spec (alsa:default, sim, auto)")
	fs.StringVar(&o.dataDir, "data", flagenv.StateDir(getenv, "treatfeeder"), "directory for the event log, password and session key")
	fs.StringVar(&o.password, "password", "", "login password (default: generated at first start and stored in the data dir)")
	fs.StringVar(&o.token, "token", "", "bearer token for scripts (default: none, bearer auth off)")
	fs.IntVar(&o.dailyLimit, "daily-limit", 10, "treats per local calendar day")
	fs.DurationVar(&o.minInterval, "min-interval", 30*time.Second, "minimum time between treats (0 disables)")
	fs.StringVar(&o.openAngle, "open-angle", "90", "servo angle with the hopper open, in degrees")
	fs.StringVar(&o.closedAngle, "closed-angle", "0", "servo angle with the hopper closed, in degrees")
	fs.DurationVar(&o.openTime, "open-time", time.Second, "how long the hopper stays open per treat")
	fs.StringVar(&o.sound, "sound", "", "WAV file for the call button (default: the built-in call)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate file (with -tls-key: serve HTTPS)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "TLS key file")

	// Environment variables TREATFEEDER_<NAME> set defaults; flags win.
	if _, err := flagenv.Apply(fs, "TREATFEEDER", getenv); err != nil {
		return nil, usageError{err}
	}
	if err := fs.Parse(args); err != nil {
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	switch {
	case o.dailyLimit < 1:
		return nil, usageError{fmt.Errorf("-daily-limit must be at least 1, got %d", o.dailyLimit)}
	case o.minInterval < 0:
		return nil, usageError{fmt.Errorf("-min-interval must not be negative, got %s", o.minInterval)}
	case o.openTime <= 0 || o.openTime > time.Minute:
		return nil, usageError{fmt.Errorf("-open-time must be between 0 and 1m, got %s", o.openTime)}
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return nil, usageError{errors.New("-tls-cert and -tls-key go together")}
	case o.dataDir == "":
		return nil, usageError{errors.New("-data is empty and no state directory could be found")}
	}
	return o, nil
}

// camStream adapts the camera broadcaster to the server.
type camStream struct{ *camera.Broadcaster }

func (c camStream) StreamStats() streamStats {
	s := c.Stats()
	return streamStats{Viewers: s.Viewers, FramesSent: s.Delivered}
}

// run is main without the process; it returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, getenv, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "treatfeeder:", err)
			return 2
		}
		return 0
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	code, err := serve(ctx, o, log, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "treatfeeder:", err)
	}
	return code
}

func serve(ctx context.Context, o *options, log *slog.Logger, stdout io.Writer) (int, error) {
	openAngle, err := servo.ParseAngle(o.openAngle)
	if err != nil {
		return 2, fmt.Errorf("-open-angle: %w", err)
	}
	closedAngle, err := servo.ParseAngle(o.closedAngle)
	if err != nil {
		return 2, fmt.Errorf("-closed-angle: %w", err)
	}
	// Resolve every spec before opening anything, so a typo in one flag
	// does not first move the servo.
	servoSpec, err := servo.Resolve(o.servoSpec)
	if err != nil {
		return 2, fmt.Errorf("-servo: %w", err)
	}
	cameraSpec, err := camera.Resolve(o.cameraSpec)
	if err != nil {
		return 2, fmt.Errorf("-camera: %w", err)
	}
	audioSpec, err := audio.Resolve(o.audioSpec)
	if err != nil {
		return 2, fmt.Errorf("-audio: %w", err)
	}
	sound := audio.DefaultCall()
	if o.sound != "" {
		if sound, err = audio.LoadWAV(o.sound); err != nil {
			return 2, fmt.Errorf("-sound: %w", err)
		}
	}
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return 1, fmt.Errorf("data dir: %w", err)
	}

	dev, err := servo.Open(servoSpec)
	if err != nil {
		return 1, err
	}
	defer dev.Close()
	if c, ok := dev.(interface{ Config() servo.Config }); ok {
		cfg := c.Config()
		for _, a := range []struct {
			flag  string
			angle string
		}{{"-open-angle", o.openAngle}, {"-closed-angle", o.closedAngle}} {
			v, _ := servo.ParseAngle(a.angle)
			if _, err := cfg.Pulse(v); err != nil {
				return 2, fmt.Errorf("%s: %w", a.flag, err)
			}
		}
	}
	player, err := audio.Open(audioSpec)
	if err != nil {
		return 1, err
	}
	defer player.Close()
	bc, err := camera.NewBroadcasterSpec(cameraSpec, camera.BroadcastOptions{Logger: log})
	if err != nil {
		return 1, err
	}
	defer bc.Close()

	elog, history, bad, err := openEventLog(filepath.Join(o.dataDir, "events.log"))
	if err != nil {
		return 1, err
	}
	defer elog.Close()
	if bad > 0 {
		log.Warn("event log had unreadable lines; they were skipped", "lines", bad)
	}
	f, err := newFeeder(feederConfig{OpenAngle: openAngle, ClosedAngle: closedAngle, OpenTime: o.openTime,
		DailyLimit: o.dailyLimit, MinInterval: o.minInterval}, dev, elog, history)
	if err != nil {
		return 1, err
	}

	password, generated, err := loadPassword(o.dataDir, o.password)
	if err != nil {
		return 1, err
	}
	key, err := loadKey(o.dataDir)
	if err != nil {
		return 1, err
	}
	a := newAuth(password, o.token, key, o.tlsCert != "", time.Now)
	devices := map[string]string{"servo": servoSpec, "camera": cameraSpec, "audio": audioSpec}
	srv := newServer(f, a, player, sound, camStream{bc}, devices, log)

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return 1, err
	}
	scheme := "http"
	if o.tlsCert != "" {
		scheme = "https"
	}
	fmt.Fprintf(stdout, "treat feeder on %s\n", displayURL(scheme, ln.Addr()))
	switch {
	case generated:
		fmt.Fprintf(stdout, "password: %s (generated; stored in %s, shown only this once)\n", password, filepath.Join(o.dataDir, "password"))
	case o.password == "":
		fmt.Fprintf(stdout, "password: stored in %s\n", filepath.Join(o.dataDir, "password"))
	}
	fmt.Fprintf(stdout, "devices: servo=%s camera=%s audio=%s\n",
		describe(o.servoSpec, servoSpec), describe(o.cameraSpec, cameraSpec), describe(o.audioSpec, audioSpec))

	baseCtx, cancelRequests := context.WithCancel(context.Background())
	defer cancelRequests()
	hs := &http.Server{
		Handler:           srv.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12},
	}
	serveErr := make(chan error, 1)
	go func() {
		if o.tlsCert != "" {
			serveErr <- hs.ServeTLS(ln, o.tlsCert, o.tlsKey)
		} else {
			serveErr <- hs.Serve(ln)
		}
	}()

	code := 0
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		log.Error("server failed", "err", err)
		code = 1
	}
	// Stop taking requests, end streams and event streams, let a dispense
	// in progress close the hopper, then close it once more and release.
	shutdownDone := make(chan error, 1)
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { shutdownDone <- hs.Shutdown(sctx) }()
	cancelRequests()
	if err := f.Shutdown(); err != nil {
		log.Error("closing the hopper at shutdown", "err", err)
		code = 1
	} else {
		log.Info("hopper closed")
	}
	if err := <-shutdownDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("http shutdown", "err", err)
	}
	return code, nil
}

// describe shows the spec a device runs on, and that "auto" chose it: a
// feeder that silently runs on a simulation would puzzle its owner.
func describe(asked, resolved string) string {
	if strings.TrimSpace(asked) != "auto" {
		return resolved
	}
	if resolved == "sim" || strings.HasPrefix(resolved, "sim:") || strings.HasPrefix(resolved, "sim?") {
		return resolved + " (auto: no hardware detected, simulated)"
	}
	return resolved + " (auto)"
}

// displayURL turns a listen address into one a person can open.
func displayURL(scheme string, addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return scheme + "://" + addr.String() + "/"
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/"
}
