package servo_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/pikit/pikit/servo"
	"periph.io/x/conn/v3/physic"
)

// A simulated servo follows its commands at an SG90's speed; with a fake
// clock a test can watch it move without waiting.
func ExampleSim() {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s, err := servo.NewSim(servo.Config{}, servo.SimOptions{Now: func() time.Time { return now }})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	if err := s.SetAngle(90 * physic.Degree); err != nil {
		log.Fatal(err)
	}
	fmt.Println("pulse:", s.Pulse())
	now = now.Add(50 * time.Millisecond)
	fmt.Println("after 50ms:", s.Position())
	now = now.Add(time.Second)
	fmt.Println("after 1s:", s.Position(), "settled:", s.Settled())

	if err := s.SetAngle(200 * physic.Degree); err != nil {
		fmt.Println(err)
	}
	// Output:
	// pulse: 1.5ms
	// after 50ms: 30.00°
	// after 1s: 90.00° settled: true
	// servo: angle out of range: 200° not within 0° to 180°
}

// Open takes the same spec strings as every pikit program's -servo flag,
// including calibration options.
func ExampleOpen() {
	d, err := servo.Open("sim?min=0.5ms&max=2.5ms&angles=-90..90")
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	if err := d.SetAngle(-90 * physic.Degree); err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.(*servo.Sim).Pulse())

	_, err = servo.Open("sysfs")
	fmt.Println(err != nil)
	// Output:
	// 500µs
	// true
}

// Move sweeps smoothly instead of jumping, which keeps a treat hopper from
// flinging its contents.
func ExampleMove() {
	s, err := servo.NewSim(servo.Config{}, servo.SimOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	_ = servo.Move(ctx, s, 0, 0) // position unknown: jumps
	if err := servo.Move(ctx, s, 45*physic.Degree, 450*physic.Degree); err != nil {
		log.Fatal(err)
	}
	a, holding := s.Angle()
	fmt.Println(a, holding, len(s.History()) > 2)
	// Output: 45.00° true true
}
