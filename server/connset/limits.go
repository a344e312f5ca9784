package connset

import "time"

// OrDefault returns v if it is above zero, else def: how the protocol
// servers' Limits read a field whose zero (or negative) value means its
// default.
func OrDefault[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
