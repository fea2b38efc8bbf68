package camera_test

import (
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
	"io"
	"log"

	"github.com/pikit/pikit/camera"
)

// Open takes the same spec strings as every pikit program's -camera flag.
// The simulated camera needs no hardware.
func ExampleOpen() {
	src, err := camera.Open("sim:64x48@30")
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	for range 3 {
		f, err := src.ReadFrame(context.Background())
		if err != nil {
			log.Fatal(err)
		}
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(f.Data))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("frame %d: %dx%d JPEG\n", f.Seq, cfg.Width, cfg.Height)
	}
	fmt.Println("produced:", src.(*camera.Sim).Frames())
	// Output:
	// frame 1: 64x48 JPEG
	// frame 2: 64x48 JPEG
	// frame 3: 64x48 JPEG
	// produced: 3
}

// A Splitter cuts an MJPEG byte stream into frames, stepping over what is
// not a frame, such as the part headers of an HTTP multipart stream.
func ExampleSplitter() {
	sim, err := camera.NewSim(camera.SimOptions{Width: 32, Height: 32, FPS: 120})
	if err != nil {
		log.Fatal(err)
	}
	var stream bytes.Buffer
	for range 2 {
		f, err := sim.ReadFrame(context.Background())
		if err != nil {
			log.Fatal(err)
		}
		fmt.Fprintf(&stream, "--frame\r\nContent-Type: image/jpeg\r\n\r\n")
		stream.Write(f.Data)
		stream.WriteString("\r\n")
	}

	s := camera.NewSplitter(&stream, 0)
	for {
		frame, err := s.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("% X ... % X\n", frame[:2], frame[len(frame)-2:])
	}
	st := s.Stats()
	fmt.Printf("%d frames, %d dropped, %d bytes skipped\n", st.Frames, st.Dropped, st.Garbage)
	// Output:
	// FF D8 ... FF D9
	// FF D8 ... FF D9
	// 2 frames, 0 dropped, 78 bytes skipped
}

// SplitWords turns an exec: spec into a command line without a shell.
func ExampleSplitWords() {
	argv, err := camera.SplitWords(`ffmpeg -f lavfi -i "testsrc=size=320x240:rate=30" -f mjpeg -`)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", argv)
	_, err = camera.SplitWords("rpicam-vid -o - | tee x")
	fmt.Println(err)
	// Output:
	// ["ffmpeg" "-f" "lavfi" "-i" "testsrc=size=320x240:rate=30" "-f" "mjpeg" "-"]
	// unquoted '|' at offset 16: pipes, redirections and expansions need a shell (exec:sh -c '...'); quote it to pass it as an argument
}
