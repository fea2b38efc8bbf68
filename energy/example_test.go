package energy_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"

	"github.com/pikit/pikit/energy"
	"github.com/pikit/pikit/energy/sunspec"
)

// imageReader serves one register image from memory, answering addresses
// outside it the way a device does: with an illegal-address exception.
type imageReader struct {
	mu   sync.Mutex
	base uint16
	img  []uint16
}

func (r *imageReader) ReadRegisters(ctx context.Context, unit, fc uint8, addr, count uint16) ([]uint16, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if int(addr) < int(r.base) || int(addr)+int(count) > int(r.base)+len(r.img) {
		return nil, &energy.ModbusException{Function: fc, Code: energy.ExceptionIllegalDataAddress}
	}
	return append([]uint16(nil), r.img[int(addr-r.base):int(addr-r.base)+int(count)]...), nil
}

func (r *imageReader) Close() error { return nil }

// A SunSpec inverter read through any RegisterReader: here an image in
// memory, in practice NewModbus("tcp://192.168.1.20:502", ...).
func ExampleOpenSunSpec() {
	common, _ := sunspec.Encode(1, sunspec.Points{Str: map[string]string{"Mn": "Pikit", "Md": "Sim", "SN": "0042"}})
	inv, _ := sunspec.Encode(101, sunspec.Points{
		Num: map[string]float64{"W": 2310, "Hz": 50.01, "PhVphA": 231.4, "AphA": 10, "WH": 8.5e6},
		Str: map[string]string{"St": "MPPT"},
	})
	img := sunspec.BuildImage(40000, []sunspec.ModelImage{{ID: 1, Regs: common}, {ID: 101, Regs: inv}})

	ctx := context.Background()
	dev, err := energy.OpenSunSpec(ctx, &imageReader{base: 40000, img: img}, 1, energy.SunSpecOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer dev.Close()
	r, err := dev.Read(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Device.Manufacturer, r.Device.Serial)
	fmt.Println("AC", r.ACPower, "W at", r.Frequency, "Hz, state", r.State)
	fmt.Println("phase A", r.Phases[0].Voltage, "V", r.Phases[0].Current, "A")
	fmt.Println("total", r.EnergyTotal, "Wh; DC power", r.DCPower)
	// Output:
	// Pikit 0042
	// AC 2310 W at 50.01 Hz, state mppt
	// phase A 231.4 V 10 A
	// total 8500000 Wh; DC power —
}

// A device that is not SunSpec is reported with ErrNotSunSpec; exceptions
// from the device can be told apart from transport failures.
func ExampleModbusException() {
	_, err := energy.OpenSunSpec(context.Background(), &imageReader{base: 0, img: make([]uint16, 10)}, 1, energy.SunSpecOptions{})
	fmt.Println(errors.Is(err, energy.ErrNotSunSpec))

	_, err = (&imageReader{}).ReadRegisters(context.Background(), 1, 3, 40000, 2)
	var ex *energy.ModbusException
	if errors.As(err, &ex) {
		fmt.Println(ex.Code, ex.Name())
	}
	// Output:
	// true
	// 2 illegal data address
}

type acme struct{ rr energy.RegisterReader }

var registerAcme sync.Once

func (a *acme) Read(context.Context) (energy.Reading, error) { return energy.Reading{}, nil }
func (a *acme) Info(context.Context) (energy.Info, error)    { return energy.Info{Profile: "acme"}, nil }
func (a *acme) Close() error                                 { return a.rr.Close() }

// A vendor profile gets Modbus TCP, RTU and RTU-over-TCP specs with one
// call. Opening does no I/O, so this runs without a device.
func ExampleRegisterTransportDrivers() {
	// A name can be registered once per process; profiles do it in init.
	var err error
	registerAcme.Do(func() {
		err = energy.RegisterTransportDrivers("acme", func(rr energy.RegisterReader, unit uint8, q url.Values) (energy.Inverter, error) {
			fmt.Println("unit", unit, "options", q.Encode())
			return &acme{rr}, nil
		}, "&phases=N")
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	inv, err := energy.Open("acme+tcp://192.0.2.10?unit=3&phases=3")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer inv.Close()
	_, err = energy.Open("acme+rtu:///dev/ttyUSB0?baud=9600&unit=0")
	fmt.Println(err)
	// Output:
	// unit 3 options phases=3
	// energy: bad unit 0 (want 1..247 on rtu) (spec "acme+rtu:///dev/ttyUSB0?baud=9600&unit=0")
}

func ExampleParseTransportSpec() {
	ts, err := energy.ParseTransportSpec("rtu", "///dev/ttyUSB0?baud=19200&parity=E&unit=5")
	fmt.Println(ts.URL, ts.Unit, err)
	// Output:
	// rtu:///dev/ttyUSB0?baud=19200&parity=E 5 <nil>
}
