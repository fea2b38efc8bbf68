package irlamp_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/pikit/pikit/irlamp"
)

// A Lamp sends the 24-key remote's codes and remembers what the lamp shows.
// Against the simulated lamp, which decodes the pulses it receives, the
// result can be checked.
func ExampleLamp() {
	ctx := context.Background()
	sim, err := irlamp.NewSim(irlamp.SimOptions{Instant: true})
	if err != nil {
		log.Fatal(err)
	}
	defer sim.Close()
	lamp, err := irlamp.NewLamp(sim, irlamp.LED24Key(), irlamp.LampOptions{})
	if err != nil {
		log.Fatal(err)
	}

	if err := lamp.SetColor(ctx, "red"); err != nil { // switches it on first
		log.Fatal(err)
	}
	if err := lamp.SetBrightness(ctx, 7); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("sim shows: %+v\n", sim.State())
	st := lamp.State()
	fmt.Println("lamp believes:", st.On, st.Color, st.Brightness)
	fmt.Println(lamp.SetColor(ctx, "mauve"))
	// Output:
	// sim shows: {On:true Color:RED Brightness:7 Effect:}
	// lamp believes: true RED 7
	// irlamp: unknown color "mauve" (known: RED, GREEN, BLUE, WHITE, ORANGE, PEA_GREEN, DARK_BLUE, DARK_YELLOW, CYAN, BROWN, YELLOW, LIGHT_BLUE, PINK, STRAW_YELLOW, SKY_BLUE, PURPLE)
}

// A key's pulses are the NEC frame a receiver decodes.
func ExampleDecodeNEC() {
	r := irlamp.LED24Key()
	pulses, err := r.Pulses("RED")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(pulses), "durations:", pulses[:6], "...")
	addr, cmd, err := irlamp.DecodeNEC(pulses)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("address 0x%04X command 0x%02X\n", addr, cmd)
	scancode, _ := r.NECX("RED")
	fmt.Printf("ir-ctl -S necx:0x%06x\n", scancode)
	// Output:
	// 67 durations: [9000 4500 560 560 560 560] ...
	// address 0xEF00 command 0x04
	// ir-ctl -S necx:0x00ef04
}

// ParseLircdConf reads the remotes of a lircd.conf file.
func ExampleParseLircdConf() {
	const conf = `
begin remote
  name  LED_24_KEY
  bits           16
  flags SPACE_ENC|CONST_LENGTH
  header       9000  4500
  one           560  1690
  zero          560   560
  ptrail        560
  pre_data_bits  16
  pre_data   0x00F7
  gap        108000
      begin codes
          ON               0xC03F
          RED              0x20DF
      end codes
end remote
`
	remotes, err := irlamp.ParseLircdConf(strings.NewReader(conf))
	if err != nil {
		log.Fatal(err)
	}
	r := remotes[0]
	fmt.Println(r.Name(), r.Keys(), r.Frequency(), r.Gap())
	sc, ok := r.NECX("ON")
	fmt.Printf("ON: NECX 0x%06x %v\n", sc, ok)

	_, err = irlamp.ParseLircdConf(strings.NewReader("begin remote\n  name X\n  flags RC5\n"))
	fmt.Println(err)
	// Output:
	// LED_24_KEY [ON RED] 38000 41.15ms
	// ON: NECX 0x00ef03 true
	// irlamp: lircd.conf:3: encoding RC5 is not supported (only RAW_CODES and SPACE_ENC)
}

// Open takes the same specs as every pikit program's -irlamp flag; "sim"
// can lose codes, to try out a Lamp's refresh.
func ExampleOpen() {
	tx, err := irlamp.Open("sim?drop=0.5&seed=1&instant=true")
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Close()
	if err := tx.Send(context.Background(), irlamp.LED24Key(), "ON", 3); err != nil {
		log.Fatal(err)
	}
	sim := tx.(*irlamp.Sim)
	for _, e := range sim.History() {
		fmt.Println(e)
	}
	fmt.Println("on:", sim.State().On)
	// Output:
	// ON: received ON
	// ON: received ON
	// ON: dropped
	// ON: received ON
	// on: true
}
