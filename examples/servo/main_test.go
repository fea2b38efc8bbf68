package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		code        int
		out, errOut string
	}{
		{[]string{"-hold", "1ms"}, 0, "servo sim\nat 90.0° (pulse 1.5ms), 1 commands so far\nreleased after 1ms\n", ""},
		{[]string{"-angle", "10", "-hold", "0"}, 0, "at 10.0° (pulse 700µs)", ""},
		{[]string{"-sweep", "-speed", "3600", "-hold", "0"}, 0, "at 180.0° (pulse 2.4ms)", ""},
		{[]string{"-angle", "300"}, 1, "released", "angle out of range"},
		{[]string{"-angle", "abc"}, 2, "", `angle "abc"`},
		{[]string{"-servo", "bogus"}, 2, "", `unknown driver "bogus"`},
		{[]string{"-speed", "-1"}, 2, "", "must not be negative"},
		{[]string{"-nope"}, 2, "", "flag provided but not defined"},
		{[]string{"extra"}, 2, "", "unexpected arguments"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errOut)
			if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errOut.String(), tc.errOut) {
				t.Errorf("run(%q) = %d\nstdout: %s\nstderr: %s\nwant %d, stdout containing %q, stderr containing %q",
					tc.args, code, out.String(), errOut.String(), tc.code, tc.out, tc.errOut)
			}
		})
	}
}

func TestRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	if code := run(ctx, []string{"-sweep", "-speed", "1"}, &out, &errOut); code != 1 || !strings.Contains(out.String(), "interrupted") {
		t.Errorf("run with cancelled ctx = %d, stdout %q stderr %q", code, out.String(), errOut.String())
	}
}
