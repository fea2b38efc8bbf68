package servo

import "github.com/pikit/pikit/internal/devspec"

// The sysfs driver registers only on Linux, the only OS with the PWM class;
// the driver itself (sysfs.go) is portable so that it is tested everywhere.
func init() {
	registry.MustRegister(devspec.Driver[Device]{
		Name:  "sysfs",
		Usage: "sysfs:pwmchipN/M",
		Open:  openSysfs,
		// Chip 0 channel 0 is GPIO18 with either PWM overlay. Detect only
		// stats: exporting here would change the hardware's state.
		Detect: func() (string, bool) { return detectSysfs(defaultSysfsRoot) },
	})
}
