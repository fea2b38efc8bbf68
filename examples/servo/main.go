// Command servo moves one servo, to try out wiring and calibration.
//
//	go run ./examples/servo                          # simulated servo to 90°
//	servo -servo sysfs:pwmchip0/0 -angle 45          # kernel PWM, GPIO18
//	servo -servo 'pca9685:/dev/i2c-1@0x40/0?min=0.5ms&max=2.5ms' -sweep
//
// It prints each thing it did. With -sweep it sweeps across the whole angle
// range and back; with -hold 0 it leaves the servo holding its angle,
// otherwise it releases it after the hold time. Ctrl-C stops a sweep where
// it is and releases the servo.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pikit/pikit/servo"
	"periph.io/x/conn/v3/physic"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit status (2 for bad
// flags, 1 for a device error).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("servo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	spec := fs.String("servo", "sim", "servo driver spec: sim, sysfs:pwmchipN/M, pca9685:/dev/i2c-N@0xADDR/CH, gpio:GPIOn, auto")
	angleFlag := fs.String("angle", "90", "angle to move to, in degrees")
	sweep := fs.Bool("sweep", false, "sweep across the whole angle range and back instead")
	speedFlag := fs.Float64("speed", 180, "sweep speed in degrees per second (0: as fast as the servo goes)")
	hold := fs.Duration("hold", time.Second, "how long to hold before releasing (0: leave it holding)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "servo: unexpected arguments %q\n", fs.Args())
		return 2
	}
	target, err := servo.ParseAngle(*angleFlag)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if *speedFlag < 0 || *hold < 0 {
		fmt.Fprintln(stderr, "servo: -speed and -hold must not be negative")
		return 2
	}
	speed := physic.Angle(*speedFlag * float64(physic.Degree))

	resolved, err := servo.Resolve(*spec)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	d, err := servo.Open(resolved)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer func() {
		if err := d.Close(); err != nil {
			fmt.Fprintln(stderr, err)
		}
	}()
	fmt.Fprintf(stdout, "servo %s\n", resolved)

	if err := act(ctx, d, target, speed, *sweep, *hold, stdout); err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(stdout, "interrupted")
		} else {
			fmt.Fprintln(stderr, err)
		}
		if rerr := d.Release(); rerr == nil {
			fmt.Fprintln(stdout, "released")
		}
		return 1
	}
	return 0
}

func act(ctx context.Context, d servo.Device, target, speed physic.Angle, sweep bool, hold time.Duration, out io.Writer) error {
	cfg := config(d)
	if sweep {
		// Start from the middle, so the first leg is a visible sweep
		// rather than a jump from an unknown position.
		mid := (cfg.MinAngle + cfg.MaxAngle) / 2
		for _, a := range []physic.Angle{mid, cfg.MinAngle, cfg.MaxAngle, mid} {
			if err := servo.Move(ctx, d, a, speed); err != nil {
				return err
			}
			report(d, out)
		}
	} else {
		if err := servo.Move(ctx, d, target, speed); err != nil {
			return err
		}
		report(d, out)
	}
	if hold == 0 {
		fmt.Fprintln(out, "holding")
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(hold):
	}
	if err := d.Release(); err != nil {
		return err
	}
	fmt.Fprintf(out, "released after %s\n", hold)
	return nil
}

// config returns the calibration of drivers that expose it.
func config(d servo.Device) servo.Config {
	if c, ok := d.(interface{ Config() servo.Config }); ok {
		return c.Config()
	}
	return servo.Config{}.WithDefaults()
}

func report(d servo.Device, out io.Writer) {
	a, _ := d.Angle()
	p, _ := config(d).Pulse(a)
	line := fmt.Sprintf("at %.1f° (pulse %s)", float64(a)/float64(physic.Degree), p)
	if s, ok := d.(*servo.Sim); ok {
		line += fmt.Sprintf(", %d commands so far", len(s.History()))
	}
	fmt.Fprintln(out, line)
}
