package sunspec_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/pikit/pikit/energy/sunspec"
)

// Building a device image for a simulator, then discovering and decoding
// it the way a client does.
func Example() {
	common, _ := sunspec.Encode(1, sunspec.Points{Str: map[string]string{"Mn": "Pikit", "Md": "Sim 3P", "SN": "SIM0001"}})
	inv, err := sunspec.Encode(103, sunspec.Points{
		Num: map[string]float64{"W": 1234.5, "W_SF": -1, "Hz": 50.01, "WH": 1.5e6, "PhVphA": 230.1, "AphA": 1.8},
		Str: map[string]string{"St": "MPPT"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	img := sunspec.BuildImage(40000, []sunspec.ModelImage{{ID: 1, Regs: common}, {ID: 103, Regs: inv}})

	// A simulator serves PDU address a as img[a-40000].
	read := func(_ context.Context, addr, count uint16) ([]uint16, error) {
		if addr < 40000 || int(addr-40000)+int(count) > len(img) {
			return nil, errors.New("illegal data address")
		}
		return img[addr-40000 : int(addr-40000)+int(count)], nil
	}
	m, err := sunspec.Discover(context.Background(), read, sunspec.DiscoverOptions{Absent: func(error) bool { return true }})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, h := range m.Models {
		fmt.Printf("model %d at %d, length %d\n", h.ID, h.Addr, h.Length)
	}
	h, _ := m.Find(103)
	body, _ := read(context.Background(), h.BodyAddr(), h.Length)
	dec, _ := sunspec.Decode(103, body)
	w, _ := dec.Num("W")
	hz, _ := dec.Num("Hz")
	_, hasVA := dec.Num("VA")
	fmt.Println(w, "W", hz, "Hz", dec.Str("St"), "VA reported:", hasVA)
	// Output:
	// model 1 at 40002, length 66
	// model 103 at 40070, length 50
	// 1234.5 W 50.01 Hz MPPT VA reported: false
}
