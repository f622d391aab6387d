package config

import (
	"fmt"
	"time"
)

// Location is the dashboard's time zone: web.timezone, or the system's
// when it is empty.
func (w WebConfig) Location() (*time.Location, error) {
	if w.Timezone == "" {
		return time.Local, nil
	}
	loc, err := time.LoadLocation(w.Timezone)
	if err != nil {
		return nil, fmt.Errorf("%q is not a time zone name: %w", w.Timezone, err)
	}
	return loc, nil
}
