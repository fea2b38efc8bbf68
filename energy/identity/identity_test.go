package identity

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/pikit/pikit/internal/devspec"
)

func TestOpenSpecs(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{"auto", " auto "} {
		if _, err := Open(spec); err == nil || !strings.Contains(err.Error(), "OpenDefault") {
			t.Errorf("Open(%q): %v", spec, err)
		}
		if _, err := Resolve(spec); err == nil {
			t.Errorf("Resolve(%q) succeeded", spec)
		}
	}
	if _, err := Open("tpm:/dev/tpm0"); !errors.Is(err, devspec.ErrUnknownDriver) || !strings.Contains(err.Error(), "file:PATH") {
		t.Errorf("unknown driver: %v", err)
	}
	if s, err := Resolve("sim"); err != nil || s != "sim" {
		t.Errorf(`Resolve("sim") = %q, %v`, s, err)
	}
	var names []string
	for _, d := range Drivers() {
		names = append(names, d.Name)
	}
	want := []string{"file", "sim"}
	if runtime.GOOS == "linux" {
		want = append(want, "atecc608")
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("drivers %v, want %v", names, want)
	}
	if err := Register(Driver{Name: "sim", Open: func(string) (Identity, error) { return nil, nil }}); err == nil {
		t.Error("registered sim twice")
	}
}

// TestOpenDefault replaces the chip probe, so it is not parallel.
func TestOpenDefault(t *testing.T) {
	saved := probeDefaultChip
	t.Cleanup(func() { probeDefaultChip = saved })

	dir := filepath.Join(t.TempDir(), "data")
	probeDefaultChip = func() (Identity, error) { return nil, errors.Join(ErrNoChip, ErrNoChip) }
	id, err := OpenDefault(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id.KeyType() != "software" {
		t.Errorf("KeyType() = %q", id.KeyType())
	}
	if _, err := os.Stat(filepath.Join(dir, "device-key.pem")); err != nil {
		t.Error(err)
	}
	if runtime.GOOS != "windows" {
		if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
			t.Errorf("data dir mode %04o", st.Mode().Perm())
		}
	}
	again, err := OpenDefault(dir)
	if err != nil || again.Serial() != id.Serial() {
		t.Fatalf("second start: %v, serial %s vs %s", err, again.Serial(), id.Serial())
	}

	probeDefaultChip = func() (Identity, error) { return nil, errNoBus }
	if id, err := OpenDefault(dir); err != nil || id.KeyType() != "software" {
		t.Errorf("no bus: %v", err)
	}

	probeDefaultChip = func() (Identity, error) {
		a, err := OpenSim()
		if err != nil {
			return nil, err
		}
		return a, nil
	}
	if id, err := OpenDefault(dir); err != nil || id.KeyType() != "sim" {
		t.Errorf("chip present: %v", err)
	}

	// A chip that answers and fails, or a bus that cannot be opened, must
	// not silently switch the device to the file key.
	broken := &StatusError{Op: "info", Code: StatusExecution}
	probeDefaultChip = func() (Identity, error) { return nil, broken }
	if _, err := OpenDefault(dir); !errors.Is(err, broken) {
		t.Errorf("failing chip: %v", err)
	}

	probeDefaultChip = nil
	if _, err := OpenDefault(""); err == nil {
		t.Error("empty data dir accepted")
	}
}
