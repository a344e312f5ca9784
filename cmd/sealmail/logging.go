package main

import (
	"fmt"
	"io"
	"log/slog"
)

// parseLevel maps log.level to a slog level.
func parseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("want debug, info, warn or error, got %q", s)
}

// newLogger returns the server's logger: text or JSON on w.
func newLogger(c *Config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.Log.Level) // validated by Config.Validate
	opt := &slog.HandlerOptions{Level: level}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opt))
	}
	return slog.New(slog.NewTextHandler(w, opt))
}
