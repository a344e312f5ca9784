package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/sealmail/sealmail/store"
)

// Progress of long admin jobs (account deletion, backup, restore, import,
// export, retention sweeps). A command makes one with env.progress and
// either feeds it (Add, Set) or hands it to the operation through the
// context (progress.context), where store.ReportProgress reaches it, also
// from inside the running server: the control socket forwards the
// server's reports as progress lines (see control.go).
//
// On a terminal it draws one line on standard error, redrawn in place at
// most progressRedraw times a second:
//
//	backup   [##########>             ]  45%  1.2 GiB of 2.7 GiB  12.0 MiB/s  1m20s left
//
// When standard error is not a terminal (scripts, systemd, logs) it shows
// nothing: the command's own final line says what was done.

// progressUnit says what a job counts.
type progressUnit int

const (
	unitBytes progressUnit = iota
	unitMessages
	unitItems
)

// progressRedraw bounds how often the line is redrawn.
const progressRedraw = 10

// progress shows how far one job has come. Its methods are safe for
// concurrent use and cheap when nothing is shown.
type progress struct {
	w     io.Writer // immutable; nil: show nothing
	label string    // immutable
	unit  progressUnit
	width int // immutable: the terminal's width
	now   func() time.Time

	mu          sync.Mutex
	done, total int64     // guarded by mu
	start, last time.Time // guarded by mu
	drawn       bool      // guarded by mu: a line is on the screen
}

// progress returns a progress display for a job named label, drawn on
// standard error when it is a terminal.
func (e *env) progress(label string, unit progressUnit) *progress {
	p := &progress{label: label, unit: unit, width: 80, now: time.Now}
	if f := e.io.errFile; f != nil && term.IsTerminal(int(f.Fd())) {
		p.w = f
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 40 {
			p.width = w
		}
	}
	p.start = p.now()
	return p
}

// context returns ctx carrying p, for operations that report through
// store.ReportProgress.
func (p *progress) context(ctx context.Context) context.Context {
	return store.WithProgress(ctx, p.Set)
}

// Set records that done of total units are through (total 0: unknown).
func (p *progress) Set(done, total int64) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done, p.total = done, total
	p.drawLocked(false)
}

// Add records n more units done.
func (p *progress) Add(n int64) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	p.drawLocked(false)
}

// SetTotal changes the total (0: unknown).
func (p *progress) SetTotal(total int64) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total = total
}

// Done draws the final state and ends the line, so that what the command
// prints next starts on a line of its own.
func (p *progress) Done() {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.drawn {
		return
	}
	p.drawLocked(true)
	io.WriteString(p.w, "\n")
	p.drawn = false
}

// drawLocked redraws the line unless it was drawn less than
// 1/progressRedraw s ago (final draws always happen).
func (p *progress) drawLocked(final bool) {
	now := p.now()
	if !final && p.drawn && now.Sub(p.last) < time.Second/progressRedraw {
		return
	}
	p.last = now
	p.drawn = true
	io.WriteString(p.w, "\r"+p.lineLocked(now)+"\x1b[K")
}

// lineLocked renders the line.
func (p *progress) lineLocked(now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s ", p.label)
	elapsed := now.Sub(p.start)
	if p.total > 0 {
		frac := min(float64(p.done)/float64(p.total), 1)
		barWidth := max(10, min(40, p.width-60))
		filled := int(frac * float64(barWidth))
		b.WriteString("[" + strings.Repeat("#", filled))
		if filled < barWidth {
			b.WriteString(">" + strings.Repeat(" ", barWidth-filled-1))
		}
		fmt.Fprintf(&b, "] %3d%%  %s of %s", int(frac*100), p.amount(p.done), p.amount(p.total))
		if elapsed > time.Second && p.done > 0 && p.done < p.total {
			left := time.Duration(float64(elapsed) * float64(p.total-p.done) / float64(p.done))
			fmt.Fprintf(&b, "  %s  %s left", p.rate(elapsed), left.Round(time.Second))
		}
	} else {
		fmt.Fprintf(&b, "%s", p.amount(p.done))
		if elapsed > time.Second {
			fmt.Fprintf(&b, "  %s", p.rate(elapsed))
		}
	}
	s := b.String()
	if len(s) > p.width-1 {
		s = s[:p.width-1]
	}
	return s
}

func (p *progress) amount(n int64) string {
	switch p.unit {
	case unitBytes:
		return formatBytes(n)
	case unitMessages:
		if n == 1 {
			return "1 message"
		}
		return fmt.Sprintf("%d messages", n)
	}
	return fmt.Sprintf("%d", n)
}

func (p *progress) rate(elapsed time.Duration) string {
	r := float64(p.done) / elapsed.Seconds()
	if p.unit == unitBytes {
		return formatBytes(int64(r)) + "/s"
	}
	return fmt.Sprintf("%.0f/s", r)
}

// formatBytes renders n bytes for people: "512 B", "1.2 GiB".
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// sweepLogInterval is how often the served sweeper logs its progress.
const sweepLogInterval = 30 * time.Second

// logProgress returns a store.Progress that logs how far a job the
// server runs on its own (a retention sweep) has come: its first report,
// then at most once per interval; there is no terminal to draw on. The
// job's own last line says what it did.
func logProgress(log *slog.Logger, job, unit string, every time.Duration) store.Progress {
	var (
		mu   sync.Mutex
		last time.Time
	)
	return func(done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if !last.IsZero() && now.Sub(last) < every {
			return
		}
		last = now
		attrs := []any{"job", job, unit, done}
		if total > 0 {
			attrs = append(attrs, "total", total)
		}
		log.Info("progress", attrs...)
	}
}

// countingWriter counts what goes through it into a progress.
type countingWriter struct {
	w io.Writer
	p *progress
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.p.Add(int64(n))
	return n, err
}

// countingReader counts what is read through it into a progress.
type countingReader struct {
	r io.Reader
	p *progress
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	c.p.Add(int64(n))
	return n, err
}
