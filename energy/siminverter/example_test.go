package siminverter_test

import (
	"context"
	"fmt"
	"time"

	"github.com/pikit/pikit/energy/siminverter"
)

// A simulated Huawei inverter at midsummer noon, read over Modbus TCP with
// the Huawei profile, as a gateway would.
func Example() {
	noon := time.Date(2025, 6, 21, 12, 0, 0, 0, time.UTC)
	sim, err := siminverter.New(siminverter.Options{
		Profile:   "huawei",
		PeakPower: 5000,
		Seed:      1,
		ClearSky:  true,
		Now:       func() time.Time { return noon },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sim.Close()

	inv, err := sim.Dial()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer inv.Close()
	r, err := inv.Read(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s %s, serial %s\n", r.Device.Manufacturer, r.Device.Model, r.Device.Serial)
	fmt.Printf("AC %v W, DC %v W, %v Hz, %s\n", r.ACPower, r.DCPower, r.Frequency, r.State)
	fmt.Printf("phase 1: %v V %v A; input 1: %v V %v A\n", r.Phases[0].Voltage, r.Phases[0].Current, r.DC[0].Voltage, r.DC[0].Current)
	// Output:
	// Huawei SIM-5000, serial 9200822465
	// AC 4825 W, DC 5000 W, 49.99 Hz, mppt
	// phase 1: 230 V 6.993 A; input 1: 383.5 V 2.93 A
}

// The default simulator serves SunSpec; at night it sleeps.
func Example_sunspec() {
	night := time.Date(2025, 6, 21, 23, 30, 0, 0, time.UTC)
	sim, err := siminverter.New(siminverter.Options{Seed: 1, Now: func() time.Time { return night }})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sim.Close()
	inv, err := sim.Dial()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer inv.Close()
	r, err := inv.Read(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s via %s: %v W, %s, %d MPPT inputs\n", r.Device.Model, r.Device.Profile, r.ACPower, r.State, len(r.DC))
	// Output:
	// SIM-5000 via sunspec: 0 W, sleeping, 2 MPPT inputs
}
