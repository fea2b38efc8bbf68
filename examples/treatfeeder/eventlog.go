package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Event is one line of the dispense log.
type Event struct {
	Type     string    `json:"type"` // "open", "close", "startup_close"
	Time     time.Time `json:"time"`
	Dispense int64     `json:"dispense,omitempty"` // dispense number, from 1
	Who      string    `json:"who,omitempty"`      // "session …" or "token"; never a secret
	Error    string    `json:"error,omitempty"`    // servo error, if the step failed
	Note     string    `json:"note,omitempty"`
}

// eventLog is an append-only JSON-lines file. Each event is one write of one
// whole line followed by fsync, on a file opened O_APPEND, so a crash or power
// cut can at worst leave a partial last line: earlier entries are never
// touched. Loading drops such a partial line and truncates it away, so the
// next append starts on a clean line.
type eventLog struct {
	mu   sync.Mutex
	f    *os.File
	path string
}

// openEventLog opens (creating) the log at path and returns the events it
// holds. Lines that are not valid events are skipped and counted in bad.
func openEventLog(path string) (l *eventLog, events []Event, bad int, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("event log: %w", err)
	}
	events, bad, good, err := readEvents(f)
	if err != nil {
		f.Close()
		return nil, nil, 0, fmt.Errorf("event log %s: %w", path, err)
	}
	if fi, err := f.Stat(); err == nil && fi.Size() > good {
		// A partial last line from a crash mid-write: cut it off.
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, nil, 0, fmt.Errorf("event log %s: truncating partial line: %w", path, err)
		}
		bad++
	}
	return &eventLog{f: f, path: path}, events, bad, nil
}

// readEvents parses complete lines; good is the offset after the last one.
func readEvents(r io.Reader) (events []Event, bad int, good int64, err error) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return events, bad, good, nil // a trailing partial line is not counted as good
		}
		if err != nil {
			return nil, 0, 0, err
		}
		good += int64(len(line))
		var e Event
		if jerr := json.Unmarshal(bytes.TrimSpace(line), &e); jerr != nil || e.Type == "" || e.Time.IsZero() {
			bad++
			continue
		}
		events = append(events, e)
	}
}

// Append writes e durably: it returns only after the line is on disk.
func (l *eventLog) Append(e Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return errors.New("event log closed")
	}
	if _, err := l.f.Write(b); err != nil {
		return fmt.Errorf("event log %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("event log %s: sync: %w", l.path, err)
	}
	return nil
}

func (l *eventLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
