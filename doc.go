// Package pikit is a Go SDK for Raspberry Pi gadgets with pluggable hardware
// drivers. This package holds no code; it is the map of the SDK.
//
// # Device packages
//
//   - servo: hobby servos through kernel PWM (sysfs), PCA9685 boards, periph
//     GPIO PWM, or a simulated servo.
//   - audio: WAV clips played through ALSA's aplay, or a simulated player
//     that records what it played.
//   - camera: JPEG frame sources (capture programs, V4L2, a folder, a test
//     picture) and a Broadcaster serving one camera to many MJPEG viewers.
//   - irlamp: IR lamps through lircd or /dev/lirc, with a lamp model that
//     knows what it shows.
//   - octopus: an Octopus Deploy client and a deployment-status watcher.
//   - energy: solar inverters and meters over Modbus (SunSpec and vendor
//     register profiles), with subpackages for the simulated inverter, the
//     device identity and signing, the durable queue and delivery sinks.
//
// Each device package has the same shape: a small interface named for what
// the device does (servo.Device, audio.Player, ...), blocking calls taking a
// context.Context, Close releasing the hardware and leaving it safe, one
// constructor per driver that validates its input, and a simulated driver
// (Sim) that models the device faithfully for tests and laptops.
//
// # Choosing a driver
//
// Every device package opens a device from a one-line spec, the same way, so
// every program takes the same flags:
//
//	servo.Open("sysfs:pwmchip0/0")            // driver "sysfs", argument "pwmchip0/0"
//	servo.Open("pca9685:/dev/i2c-1@0x40/3")   // PCA9685 at 0x40, channel 3
//	servo.Open("sim?slew=50ms")               // options after '?'
//	audio.Open("alsa:default")
//	servo.Open("auto")                        // real hardware if detected, else sim
//
// "auto" asks each registered driver, in registration order, whether its
// hardware is present (a cheap check such as stat-ing a sysfs directory, never
// a write) and opens the first that is; if none is, it opens the simulated
// driver and says so on stderr. Resolve tells which spec "auto" would pick
// without opening anything. Real Linux drivers register themselves from
// files built only on Linux, so on other systems "auto" always means "sim".
// Users add drivers of their own with the package's Register function.
//
// A bad spec is an error that lists the accepted forms.
//
// # Programs
//
// examples/treatfeeder is the remote treat feeder (camera stream, treat
// hopper on a servo, a sound to call the dog), examples/buildlamp shows
// deployment and CI status on an IR lamp, examples/gateway reads, signs and
// delivers inverter readings, and examples/servo moves one servo to try
// wiring and calibration.
package pikit
