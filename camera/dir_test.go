package camera

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFiles(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestDir(t *testing.T) {
	a, b, c := testJPEG(t, 16, 16, 1), testJPEG(t, 16, 16, 2), testJPEG(t, 16, 16, 3)
	dir := writeFiles(t, map[string][]byte{
		"02.JPEG":   b,
		"01.jpg":    a,
		"03.jpeg":   c,
		"notes.txt": []byte("not a frame"),
		"04.png":    []byte("\x89PNG"),
	})
	if err := os.Mkdir(filepath.Join(dir, "05.jpg"), 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d, err := NewDir(dir, DirOptions{FPS: 100, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Len() != 3 {
		t.Fatalf("Len = %d, want 3", d.Len())
	}
	want := [][]byte{a, b, c, a, b, c, a}
	var got []Frame
	for i := range want {
		f, err := d.ReadFrame(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(f.Data, want[i]) || f.Seq != uint64(i+1) || !f.Time.Equal(now) {
			t.Fatalf("frame %d: %d bytes, Seq %d, Time %v", i, len(f.Data), f.Seq, f.Time)
		}
		got = append(got, f)
	}
	// Replays share the loaded bytes.
	if &got[0].Data[0] != &got[3].Data[0] || &got[0].Data[0] != &got[6].Data[0] {
		t.Error("a replayed frame was copied")
	}
}

func TestDirErrors(t *testing.T) {
	good := testJPEG(t, 16, 16, 1)
	empty := writeFiles(t, map[string][]byte{"readme.txt": nil})
	truncated := writeFiles(t, map[string][]byte{"a.jpg": good, "b.jpg": good[:len(good)-10]})
	notJPEG := writeFiles(t, map[string][]byte{"a.jpg": []byte("\x89PNG\r\n\x1a\n....")})
	trailing := writeFiles(t, map[string][]byte{"a.jpg": append(append([]byte{}, good...), 0, 0)})
	for _, tc := range []struct {
		path string
		opts DirOptions
		err  string
	}{
		{empty, DirOptions{}, "camera: dir: no .jpg or .jpeg files in " + empty},
		{truncated, DirOptions{}, "camera: dir: " + filepath.Join(truncated, "b.jpg") + ": not a whole JPEG: does not end with FF D9"},
		{notJPEG, DirOptions{}, "camera: dir: " + filepath.Join(notJPEG, "a.jpg") + ": not a JPEG: does not start with FF D8"},
		{trailing, DirOptions{}, "camera: dir: " + filepath.Join(trailing, "a.jpg") + ": not a whole JPEG"},
		{filepath.Join(empty, "nope"), DirOptions{}, "camera: dir: open " + filepath.Join(empty, "nope") + ": no such file or directory"},
		{empty, DirOptions{FPS: 121}, "camera: dir: frame rate 121 out of range (more than 0, at most 120)"},
		{empty, DirOptions{FPS: -1}, "camera: dir: frame rate -1 out of range"},
	} {
		if _, err := NewDir(tc.path, tc.opts); err == nil || !strings.HasPrefix(err.Error(), tc.err) {
			t.Errorf("NewDir(%s, %+v) = %v, want %q", tc.path, tc.opts, err, tc.err)
		}
	}
}

func TestOpenDir(t *testing.T) {
	good := testJPEG(t, 16, 16, 1)
	dir := writeFiles(t, map[string][]byte{"a.jpg": good})
	at := filepath.Join(dir, "me@host")
	if err := os.Mkdir(at, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(at, "x.jpg"), good, 0o644); err != nil {
		t.Fatal(err)
	}
	for spec, period := range map[string]time.Duration{
		"dir:" + dir:           100 * time.Millisecond,
		"dir:" + dir + "@25":   40 * time.Millisecond,
		"dir:" + dir + "@0.5":  2 * time.Second,
		"dir:" + at + "@120":   8333333 * time.Nanosecond,
		"dir:" + dir + "@30.0": 33333333 * time.Nanosecond,
	} {
		src, err := Open(spec)
		if err != nil {
			t.Errorf("Open(%q): %v", spec, err)
			continue
		}
		if p := src.(*Dir).pace.period; p != period {
			t.Errorf("Open(%q): period %s, want %s", spec, p, period)
		}
		src.Close()
	}
	for spec, want := range map[string]string{
		"dir:":                 "camera: dir: no directory (form: dir:PATH[@FPS])",
		"dir:@10":              "camera: dir: no directory",
		"dir:" + dir + "@":     `camera: dir: bad frame rate "": want a number of frames per second, e.g. 10 or 0.5 (form: dir:PATH[@FPS])`,
		"dir:" + dir + "@fast": `camera: dir: bad frame rate "fast"`,
		"dir:" + dir + "@0":    `camera: dir: bad frame rate "0"`,
		"dir:" + dir + "@NaN":  `camera: dir: bad frame rate "NaN"`,
		"dir:" + dir + "@500":  "camera: dir: frame rate 500 out of range",
		"dir:" + at:            `camera: dir: bad frame rate "host"`,
		"dir:" + dir + "?x=1":  `camera: dir: unknown option "x": this driver takes no options`,
	} {
		if _, err := Open(spec); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want an error starting %q", spec, err, want)
		}
	}
}

func TestDirRateAndClose(t *testing.T) {
	dir := writeFiles(t, map[string][]byte{"a.jpg": testJPEG(t, 16, 16, 1)})
	d, err := NewDir(dir, DirOptions{FPS: 50})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	for range 6 {
		if _, err := d.ReadFrame(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if e := time.Since(start); e < 95*time.Millisecond || e > 500*time.Millisecond {
		t.Errorf("6 frames at 50 fps took %s, want 100ms", e)
	}
	d.Close()
	if _, err := d.ReadFrame(ctx); err != ErrClosed {
		t.Errorf("after Close: %v", err)
	}
}
