package lircdtest

import (
	"slices"
	"testing"
)

func TestParseFileDriverOutput(t *testing.T) {
	in := "# file driver\npulse 9000\nspace 4500\npulse 560\nspace 41000\n\npulse 9000\nspace 2250\npulse 560\nspace 96000\npulse 9000\n"
	got, partial, err := ParseFileDriverOutput([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := [][]uint32{{9000, 4500, 560}, {9000, 2250, 560}}
	if !slices.EqualFunc(got, want, slices.Equal) || !slices.Equal(partial, []uint32{9000}) {
		t.Errorf("frames %v partial %v, want %v and [9000]", got, partial, want)
	}
	for _, bad := range []string{"pulse\n", "space 10\n", "pulse 10\npulse 10\n", "blip 3\n", "pulse -1\n"} {
		if _, _, err := ParseFileDriverOutput([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
