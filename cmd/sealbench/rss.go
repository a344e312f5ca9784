package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// memStatus is what /proc/PID/status says of a process's memory, in
// bytes.
type memStatus struct {
	rss, hwm, anon, file int64 // VmRSS, VmHWM, RssAnon, RssFile
}

// parseMemStatus reads the memory lines of a /proc/PID/status file.
func parseMemStatus(r io.Reader) (memStatus, error) {
	var m memStatus
	found := 0
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "VmRSS":
			dst = &m.rss
		case "VmHWM":
			dst = &m.hwm
		case "RssAnon":
			dst = &m.anon
		case "RssFile":
			dst = &m.file
		default:
			continue
		}
		num, unit, _ := strings.Cut(strings.TrimSpace(rest), " ")
		kb, err := strconv.ParseInt(num, 10, 64)
		if err != nil || unit != "kB" || kb < 0 {
			return m, fmt.Errorf("server memory: bad line %q", sc.Text())
		}
		*dst = kb << 10
		found++
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("server memory: %w", err)
	}
	if found != 4 {
		return m, fmt.Errorf("server memory: VmRSS, VmHWM, RssAnon or RssFile missing")
	}
	return m, nil
}

func readMemStatus(pid int) (memStatus, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{}, fmt.Errorf("server memory: %w", err)
	}
	defer f.Close()
	return parseMemStatus(f)
}

// rssWatch follows a process's resident memory during a run: it resets
// the kernel's peak (VmHWM, via clear_refs) at the start, samples the
// anonymous and file-backed parts every interval, and reports the growth
// of each over the start.
type rssWatch struct {
	pid  int
	base memStatus
	stop chan struct{}
	done chan struct{}

	mu               sync.Mutex
	maxAnon, maxFile int64 // guarded by mu
	err              error // guarded by mu
}

// rssSampleEvery is how often rssWatch samples.
const rssSampleEvery = 20 * time.Millisecond

func watchRSS(ctx context.Context, pid int) (*rssWatch, error) {
	// "5" resets the peak resident set size (proc(5)).
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return nil, fmt.Errorf("reset peak memory of %d: %w", pid, err)
	}
	base, err := readMemStatus(pid)
	if err != nil {
		return nil, err
	}
	w := &rssWatch{pid: pid, base: base, stop: make(chan struct{}), done: make(chan struct{}),
		maxAnon: base.anon, maxFile: base.file}
	go func() {
		defer close(w.done)
		t := time.NewTicker(rssSampleEvery)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			m, err := readMemStatus(pid)
			w.mu.Lock()
			if err != nil {
				w.err = err
			} else {
				w.maxAnon, w.maxFile = max(w.maxAnon, m.anon), max(w.maxFile, m.file)
			}
			w.mu.Unlock()
		}
	}()
	return w, nil
}

// rssReport is the growth of a process's memory over a run.
type rssReport struct {
	base     memStatus
	peak     int64 // VmHWM at the end: the kernel's exact peak of VmRSS
	anonGrow int64 // largest RssAnon sampled, less the start's
	fileGrow int64 // largest RssFile sampled, less the start's
	afterRSS int64 // VmRSS at the end
	// From smaps_rollup at the end: resident pages that are clean (the
	// kernel can drop them without writing anything) and dirty.
	clean, dirty int64
}

// readRollup returns the clean and dirty resident bytes of process pid
// (Shared_Clean + Private_Clean, Shared_Dirty + Private_Dirty).
func readRollup(pid int) (clean, dirty int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("server memory: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "Shared_Clean:", "Private_Clean:":
			clean += n << 10
		case "Shared_Dirty:", "Private_Dirty:":
			dirty += n << 10
		}
	}
	return clean, dirty, nil
}

func (w *rssWatch) finish() (rssReport, error) {
	close(w.stop)
	<-w.done
	end, err := readMemStatus(w.pid)
	if err != nil {
		return rssReport{}, err
	}
	clean, dirty, err := readRollup(w.pid)
	if err != nil {
		return rssReport{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return rssReport{}, w.err
	}
	return rssReport{
		base: w.base, peak: end.hwm, afterRSS: end.rss,
		anonGrow: max(w.maxAnon, end.anon) - w.base.anon,
		fileGrow: max(w.maxFile, end.file) - w.base.file,
		clean:    clean, dirty: dirty,
	}, nil
}

func (r rssReport) write(w io.Writer, pid int) {
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	fmt.Fprintf(w, "server %d memory: VmRSS %.1f MiB at the start, peak %.1f MiB (growth %.1f MiB), %.1f MiB at the end\n",
		pid, mib(r.base.rss), mib(r.peak), mib(r.peak-r.base.rss), mib(r.afterRSS))
	fmt.Fprintf(w, "  of which anonymous (heap, stacks): growth %.1f MiB; file-backed (mapped store files): growth %.1f MiB (sampled every %s)\n",
		mib(r.anonGrow), mib(r.fileGrow), rssSampleEvery)
	fmt.Fprintf(w, "  resident at the end: %.1f MiB clean (page cache the kernel may drop without writing), %.1f MiB dirty\n",
		mib(r.clean), mib(r.dirty))
}
