package main

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// latencies records, for serve -latency, how long each IMAP command took
// (it is the IMAP server's wire.Metrics) and each store commit with the
// calls it carried (badgerstore.Options.OnCommit), and prints a summary
// at exit: where a command's time goes, seen from the server.
type latencies struct {
	mu      sync.Mutex
	cmds    map[string][]time.Duration // guarded by mu; by command name
	commits []time.Duration            // guarded by mu
	calls   []int                      // guarded by mu; calls per commit
	start   time.Time                  // immutable
}

func newLatencies() *latencies {
	return &latencies{cmds: make(map[string][]time.Duration), start: time.Now()}
}

// Command implements wire.Metrics.
func (l *latencies) Command(name, status string, d time.Duration) {
	if status != "OK" {
		name += " " + status
	}
	l.mu.Lock()
	l.cmds[name] = append(l.cmds[name], d)
	l.mu.Unlock()
}

// commit is badgerstore.Options.OnCommit.
func (l *latencies) commit(d time.Duration, calls int) {
	l.mu.Lock()
	l.commits = append(l.commits, d)
	l.calls = append(l.calls, calls)
	l.mu.Unlock()
}

// print writes one line per command name (count, mean and percentiles of
// its latency, and the share of all command time it took, busiest first)
// and one for the store's commits.
func (l *latencies) print(w io.Writer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var total time.Duration
	type row struct {
		name string
		ds   []time.Duration
		sum  time.Duration
	}
	var rows []row
	for name, ds := range l.cmds {
		r := row{name: name, ds: slices.Clone(ds)}
		for _, d := range ds {
			r.sum += d
		}
		total += r.sum
		slices.Sort(r.ds)
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b row) int { return int(b.sum - a.sum) })
	elapsed := time.Since(l.start)
	fmt.Fprintf(w, "latency over %.1f s (ms; share of all command time)\n", elapsed.Seconds())
	fmt.Fprintf(w, "%-16s %8s %7s %7s %7s %7s %8s %6s\n", "command", "count", "mean", "p50", "p90", "p99", "max", "share")
	for _, r := range rows {
		share := 0.0
		if total > 0 {
			share = 100 * float64(r.sum) / float64(total)
		}
		fmt.Fprintf(w, "%-16s %8d %s %5.1f%%\n", r.name, len(r.ds), dist(r.ds, r.sum), share)
	}
	if len(l.commits) > 0 {
		ds := slices.Clone(l.commits)
		var sum time.Duration
		calls := 0
		for i, d := range ds {
			sum += d
			calls += l.calls[i]
		}
		slices.Sort(ds)
		fmt.Fprintf(w, "%-16s %8d %s calls/commit %.2f\n", "store commit", len(ds), dist(ds, sum), float64(calls)/float64(len(ds)))
	}
}

// dist formats the mean, p50, p90, p99 and maximum of sorted ds in
// milliseconds.
func dist(ds []time.Duration, sum time.Duration) string {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	q := func(p float64) time.Duration { return ds[int(p*float64(len(ds)-1))] }
	return fmt.Sprintf("%7.2f %7.2f %7.2f %7.2f %8.2f", ms(sum/time.Duration(len(ds))), ms(q(0.5)), ms(q(0.9)), ms(q(0.99)), ms(ds[len(ds)-1]))
}
