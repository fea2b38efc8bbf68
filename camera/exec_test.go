package camera

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pikit/pikit/internal/realprog"
)

func TestSplitWords(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  \t ", nil},
		{"rpicam-vid -t 0 --codec mjpeg -o -", []string{"rpicam-vid", "-t", "0", "--codec", "mjpeg", "-o", "-"}},
		{`a  b	c`, []string{"a", "b", "c"}},
		{`'a b' "c d" e\ f`, []string{"a b", "c d", "e f"}},
		{`'' ""`, []string{"", ""}},
		{`x'y'"z"`, []string{"xyz"}},
		{`'it'\''s'`, []string{"it's"}},
		{`"a \"q\" \\ \$ \x"`, []string{`a "q" \ $ \x`}},
		{`'a \n "b"'`, []string{`a \n "b"`}},
		{"a\\\nb", []string{"ab"}},
		{`-vf "scale=320:-1,fps=5" '|' ';'`, []string{"-vf", "scale=320:-1,fps=5", "|", ";"}},
		{`"$HOME" '$(x)'`, []string{"$HOME", "$(x)"}},
	} {
		got, err := SplitWords(tc.in)
		if err != nil {
			t.Errorf("SplitWords(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("SplitWords(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
	for _, tc := range []struct{ in, err string }{
		{`'abc`, "unterminated single quote at offset 0"},
		{`a "b`, "unterminated double quote at offset 2"},
		{`"a\"`, "unterminated double quote"},
		{`a\`, "trailing backslash"},
		{`ffmpeg | tee x`, `unquoted '|' at offset 7: pipes, redirections and expansions need a shell (exec:sh -c '...')`},
		{`cmd > out`, `unquoted '>'`},
		{`cmd; rm`, `unquoted ';'`},
		{`echo $HOME`, `unquoted '$'`},
		{"a `b`", "unquoted '`'"},
	} {
		_, err := SplitWords(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("SplitWords(%q) error = %v, want it to contain %q", tc.in, err, tc.err)
		}
	}
}

// quoteWord quotes w for SplitWords (and a POSIX shell).
func quoteWord(w string) string {
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

func FuzzSplitWords(f *testing.F) {
	for _, s := range []string{
		"rpicam-vid -t 0 --codec mjpeg -o -",
		`ffmpeg -f lavfi -i "testsrc=size=320x240:rate=30" -f mjpeg -`,
		`'it'\''s' "a \"b\"" c\ d`,
		`unterminated "quote`,
		"a\\\nb\t'c\nd'",
		"x | y",
		`"$x"`,
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := SplitWords(s)
		if err != nil {
			return
		}
		// Quoting the words and splitting again gives them back.
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = quoteWord(w)
		}
		again, err := SplitWords(strings.Join(quoted, " "))
		if err != nil {
			t.Fatalf("re-splitting %q: %v", quoted, err)
		}
		if len(words) == 0 {
			words = nil
		}
		if diff := cmp.Diff(words, again); diff != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", s, diff)
		}
		// Words never hold more than the input.
		n := 0
		for _, w := range words {
			n += len(w)
		}
		if n > len(s) {
			t.Fatalf("%d bytes of words from %d bytes of input", n, len(s))
		}
	})
}

func TestTailWriter(t *testing.T) {
	w := &tailWriter{max: 8}
	fmt.Fprint(w, "hello")
	fmt.Fprint(w, " world")
	if got := w.String(); got != "lo world" {
		t.Errorf("tail = %q, want %q", got, "lo world")
	}
	fmt.Fprint(w, "0123456789abc")
	if got := w.String(); got != "56789abc" {
		t.Errorf("tail = %q, want %q", got, "56789abc")
	}
}

// checkReaped checks that the command of e has been waited for and that no
// process with its pid is left.
func checkReaped(t *testing.T, e *Exec) {
	t.Helper()
	select {
	case <-e.exited:
	default:
		t.Fatal("command not reaped after Close")
	}
	if e.cmd.ProcessState == nil {
		t.Fatal("ProcessState not set after Close")
	}
	if runtime.GOOS == "linux" {
		pid := e.cmd.ProcessState.Pid()
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			t.Errorf("process %d still exists after Close: %s", pid, stat)
		}
	}
}

// waitGoroutines waits for the goroutine count to drop back to n.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const ffmpegSpec = "exec:ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc=size=320x240:rate=30 -f mjpeg -q:v 5 -"

func TestExecFFmpeg(t *testing.T) {
	realprog.Require(t, "ffmpeg", "ffmpeg")
	before := runtime.NumGoroutine()
	src, err := Open(ffmpegSpec)
	if err != nil {
		t.Fatal(err)
	}
	e := src.(*Exec)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	var last time.Time
	for i := 1; i <= 20; i++ {
		f, err := src.ReadFrame(ctx)
		if err != nil {
			t.Fatalf("frame %d: %v (stderr: %s)", i, err, e.Stderr())
		}
		if f.Seq != uint64(i) {
			t.Errorf("frame %d has Seq %d", i, f.Seq)
		}
		if f.Time.Before(start) || f.Time.Before(last) {
			t.Errorf("frame %d time %v goes backwards", i, f.Time)
		}
		last = f.Time
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(f.Data))
		if err != nil || cfg.Width != 320 || cfg.Height != 240 {
			t.Fatalf("frame %d: %dx%d, %v; want a 320x240 JPEG", i, cfg.Width, cfg.Height, err)
		}
		if i == 1 {
			if _, err := jpeg.Decode(bytes.NewReader(f.Data)); err != nil {
				t.Fatalf("frame 1 does not decode: %v", err)
			}
		}
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	checkReaped(t, e)
	if _, err := src.ReadFrame(ctx); err != ErrClosed {
		t.Errorf("ReadFrame after Close: %v, want ErrClosed", err)
	}
	if err := src.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	waitGoroutines(t, before)
}

// A ReadFrame that gives up on its context loses at most the frame in
// flight; the next one carries on.
func TestExecFFmpegContext(t *testing.T) {
	realprog.Require(t, "ffmpeg", "ffmpeg")
	e, err := NewExec(strings.Fields("ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc=size=64x48:rate=2 -f mjpeg -"), ExecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	bg := context.Background()
	if _, err := e.ReadFrame(bg); err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(bg)
	cancel()
	if _, err := e.ReadFrame(canceled); err != context.Canceled {
		t.Fatalf("canceled context: err = %v", err)
	}
	short, cancel := context.WithTimeout(bg, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := e.ReadFrame(short); err != context.DeadlineExceeded {
		t.Fatalf("short deadline: err = %v", err)
	}
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Errorf("deadline took %s to interrupt the read", d)
	}
	f, err := e.ReadFrame(bg)
	if err != nil {
		t.Fatalf("after a deadline: %v", err)
	}
	if f.Seq != 2 {
		t.Errorf("Seq = %d after a frame and two interrupted reads, want 2", f.Seq)
	}
	if _, err := jpeg.DecodeConfig(bytes.NewReader(f.Data)); err != nil {
		t.Errorf("frame after a deadline: %v", err)
	}
}

func TestExecExitStatus(t *testing.T) {
	realprog.Require(t, "sh", "dash")
	src, err := Open(`exec:sh -c 'echo starting >&2; echo "no camera found" >&2; exit 3'`)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	_, err = src.ReadFrame(context.Background())
	want := "camera: exec: sh exited: exit status 3: starting\nno camera found"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("error does not wrap the exit status: %#v", err)
	}
	// The error sticks.
	if _, err2 := src.ReadFrame(context.Background()); err2 == nil || err2.Error() != want {
		t.Errorf("second ReadFrame: %v", err2)
	}
	checkReaped(t, src.(*Exec))
}

func TestExecCleanEnd(t *testing.T) {
	realprog.Require(t, "cat", "coreutils")
	src, err := Open("exec:cat testdata/progressive.jpg testdata/restart.jpg")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for i := 1; i <= 2; i++ {
		f, err := src.ReadFrame(context.Background())
		if err != nil || f.Seq != uint64(i) {
			t.Fatalf("frame %d: seq %d, %v", i, f.Seq, err)
		}
	}
	if _, err := src.ReadFrame(context.Background()); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestExecNotFound(t *testing.T) {
	_, err := Open("exec:pikit-no-such-program --flag")
	if err == nil {
		t.Fatal("no error")
	}
	if !errors.Is(err, exec.ErrNotFound) || !strings.HasPrefix(err.Error(), `camera: exec: "pikit-no-such-program": executable file not found`) {
		t.Errorf("err = %v", err)
	}
	for spec, want := range map[string]string{
		"exec:":          "camera: exec: no command (form: exec:COMMAND ARGS...)",
		"exec":           "camera: exec: no command",
		"exec:'ffmpeg":   "camera: exec: unterminated single quote",
		"exec:a | b":     "camera: exec: unquoted '|'",
		`exec:"" -x`:     "camera: exec: no command",
		"exec:./nothing": "camera: exec: \"./nothing\"",
	} {
		if _, err := Open(spec); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want an error starting %q", spec, err, want)
		}
	}
	if _, err := NewExec(nil, ExecOptions{}); err == nil {
		t.Error("NewExec(nil): no error")
	}
	if _, err := NewExec([]string{"true"}, ExecOptions{Grace: -1}); err == nil {
		t.Error("negative grace: no error")
	}
}

// Close interrupts a ReadFrame waiting for output and reaps the command.
func TestExecCloseWhileReading(t *testing.T) {
	realprog.Require(t, "sleep", "coreutils")
	before := runtime.NumGoroutine()
	e, err := NewExec([]string{"sleep", "60"}, ExecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := e.ReadFrame(context.Background())
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != ErrClosed {
		t.Errorf("ReadFrame during Close: %v, want ErrClosed", err)
	}
	if d := time.Since(start); d > DefaultGrace {
		t.Errorf("Close took %s: SIGTERM should have been enough", d)
	}
	checkReaped(t, e)
	if st := e.cmd.ProcessState.String(); st != "signal: terminated" {
		t.Errorf("process state %q, want terminated by SIGTERM", st)
	}
	waitGoroutines(t, before)
}

// A command that ignores SIGTERM is killed after the grace period.
func TestExecCloseStubborn(t *testing.T) {
	realprog.Require(t, "sh", "dash")
	e, err := NewExec([]string{"sh", "-c", `trap "" TERM; echo ready >&2; exec sleep 60`}, ExecOptions{Grace: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(e.Stderr(), "ready") {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	e.Close()
	if d := time.Since(start); d < 200*time.Millisecond || d > 3*time.Second {
		t.Errorf("Close took %s, want the 200ms grace and a little", d)
	}
	checkReaped(t, e)
	if st := e.cmd.ProcessState.String(); st != "signal: killed" {
		t.Errorf("process state %q, want killed", st)
	}
}

func TestExecNotJPEG(t *testing.T) {
	realprog.Require(t, "yes", "coreutils")
	e, err := NewExec([]string{"yes"}, ExecOptions{MaxFrame: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	_, err = e.ReadFrame(context.Background())
	if !errors.Is(err, ErrNotJPEG) || !strings.HasPrefix(err.Error(), "camera: exec: yes writes no JPEG frames (4096 bytes without a JPEG start); is it writing MJPEG") {
		t.Errorf("err = %v", err)
	}
}

func TestDrivers(t *testing.T) {
	var names []string
	for _, d := range Drivers() {
		names = append(names, d.Name)
		if d.Usage == "" || d.Open == nil {
			t.Errorf("driver %q has no usage or Open", d.Name)
		}
	}
	for _, want := range []string{"exec", "dir", "sim"} {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+want+" ") {
			t.Errorf("driver %q not registered (drivers: %v)", want, names)
		}
	}
	if runtime.GOOS == "linux" {
		if !strings.Contains(strings.Join(names, " "), "v4l2") {
			t.Errorf("v4l2 not registered on Linux: %v", names)
		}
	}
}
