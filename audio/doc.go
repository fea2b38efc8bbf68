// Package audio plays short sounds on a Raspberry Pi: a WAV clip or a
// generated tone through ALSA, or through a simulated player that keeps
// time (real or simulated) and records what it played, for tests and laptops.
//
// Every driver implements Player. A player is created with a driver's
// constructor (NewALSA, NewSim) or from a one-line spec with Open:
//
//	alsa                      ALSA's "default" device, through aplay
//	alsa:DEVICE               an ALSA device, e.g. alsa:hw:1,0 or alsa:plughw:CARD=Device
//	sim                       simulated player, in real time
//	sim?record=FILE           simulated player that also writes each played clip to FILE
//	auto                      alsa when aplay and a sound card are present, else sim
//
// The ALSA driver runs aplay (Debian package alsa-utils) for each clip
// rather than linking libasound, so the package builds without cgo for any
// GOOS and GOARCH and a misbehaving sound stack cannot crash the program.
//
// Clips are read from WAV files (ParseWAV, LoadWAV), built from raw PCM
// (NewClip) or generated (Tone, Chime); DefaultCall is a short embedded
// two-tone whistle.
package audio
