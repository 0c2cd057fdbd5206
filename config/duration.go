package config

import (
	"fmt"
	"time"
)

// parseDuration reads a Go duration string. A bare number is refused (except
// 0) because "100" could mean milliseconds to a Kafka user and nanoseconds
// to Go.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (want a Go duration such as 100ms, 1s or 2m30s)", s)
	}
	return d, nil
}

// UnmarshalText parses a Go duration string, so Duration also works with
// other decoders (JSON bodies of the admin API, goccy/go-yaml directly).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration back as a Go duration string, so a config
// echoed by the admin API reads like the file it came from.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String is the Go duration string, e.g. "100ms".
func (d Duration) String() string { return time.Duration(d).String() }
