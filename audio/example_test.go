package audio_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"time"

	"github.com/pikit/pikit/audio"
)

// A simulated player on an InstantClock plays the default call in no time
// while recording when it would have started and stopped.
func ExampleSim() {
	clock := audio.NewInstantClock(time.Date(2025, 6, 1, 18, 0, 0, 0, time.UTC))
	player := audio.NewSim(audio.SimOptions{Clock: clock})
	defer player.Close()

	call := audio.DefaultCall()
	for range 2 {
		if err := player.Play(context.Background(), call); err != nil {
			log.Fatal(err)
		}
	}
	plays := player.Plays()
	fmt.Println("call lasts", call.Duration())
	fmt.Println(len(plays), "plays, the last from", plays[1].Start.Format("15:04:05.0"), "to", plays[1].End.Format("15:04:05.0"))
	// Output:
	// call lasts 1.5s
	// 2 plays, the last from 18:00:01.5 to 18:00:03.0
}

func ExampleTone() {
	beep, err := audio.Tone(880, 250*time.Millisecond, 16000, 0.5)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d Hz, %d channel, %d-bit, %d frames, %s\n",
		beep.SampleRate(), beep.Channels(), beep.BitsPerSample(), beep.Frames(), beep.Duration())
	// Output:
	// 16000 Hz, 1 channel, 16-bit, 4000 frames, 250ms
}

func ExampleChime() {
	doorbell, err := audio.Chime(16000, 0.4,
		audio.Note{Freq: 659.25, Dur: 300 * time.Millisecond}, // E5
		audio.Note{Dur: 50 * time.Millisecond},                // rest
		audio.Note{Freq: 523.25, Dur: 600 * time.Millisecond}, // C5
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(doorbell.Duration())
	// Output:
	// 950ms
}

func ExampleParseWAV() {
	beep, _ := audio.Tone(440, 100*time.Millisecond, 8000, 0.5)
	var file bytes.Buffer
	if err := beep.WriteWAV(&file); err != nil {
		log.Fatal(err)
	}
	fmt.Println(file.Len(), "bytes of WAV")

	clip, err := audio.ParseWAV(&file)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(clip.Frames(), "frames at", clip.SampleRate(), "Hz")

	_, err = audio.ParseWAV(bytes.NewReader([]byte("ID3\x04...an MP3 file")))
	fmt.Println(err)
	// Output:
	// 1644 bytes of WAV
	// 800 frames at 8000 Hz
	// audio: wav: not a RIFF file (starts with "ID3\x04")
}

// Open picks a player from a spec, typically a command-line flag; "auto"
// uses the sound card when there is one.
func ExampleOpen() {
	player, err := audio.Open("sim")
	if err != nil {
		log.Fatal(err)
	}
	defer player.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	// The call lasts 1.5 s; the context stops it after 10 ms.
	err = player.Play(ctx, audio.DefaultCall())
	fmt.Println(err)
	// Output:
	// context deadline exceeded
}
