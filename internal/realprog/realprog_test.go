package realprog

import (
	"fmt"
	"strings"
	"testing"
)

type fakeTB struct {
	skipped, failed string
}

func (f *fakeTB) Helper()                           {}
func (f *fakeTB) Skipf(format string, args ...any)  { f.skipped = fmt.Sprintf(format, args...) }
func (f *fakeTB) Fatalf(format string, args ...any) { f.failed = fmt.Sprintf(format, args...) }

func TestRequireFound(t *testing.T) {
	var tb fakeTB
	if p := Require(&tb, "go", "golang"); p == "" || tb.skipped != "" || tb.failed != "" {
		t.Fatalf("Require(go) = %q, skipped %q, failed %q", p, tb.skipped, tb.failed)
	}
}

func TestRequireMissing(t *testing.T) {
	const prog = "pikit-no-such-program-xyz"
	for _, tc := range []struct {
		ci       string
		wantSkip bool
	}{{"", true}, {"false", true}, {"0", true}, {"true", false}, {"1", false}} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			var tb fakeTB
			Require(&tb, prog, "pikit-pkg")
			got := tb.skipped
			if !tc.wantSkip {
				got = tb.failed
			}
			if got == "" || (tc.wantSkip && tb.failed != "") || (!tc.wantSkip && tb.skipped != "") {
				t.Fatalf("skipped %q failed %q, want skip=%v", tb.skipped, tb.failed, tc.wantSkip)
			}
			for _, want := range []string{prog, "pikit-pkg"} {
				if !contains(got, want) {
					t.Errorf("message %q does not name %q", got, want)
				}
			}
		})
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
