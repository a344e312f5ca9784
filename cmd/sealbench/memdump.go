package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
)

// dumpOnSignal writes, on each SIGUSR1 until ctx ends or stop is called,
// the process's goroutine count and heap and stack memory in use (after a
// collection) to stdout and a heap profile to path: what idle sessions
// hold, read from inside the server (go tool pprof -sample_index
// inuse_space path).
func dumpOnSignal(ctx context.Context, path string, stdout, stderr io.Writer) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-ch:
				if !ok {
					return
				}
			}
			if err := dumpMemory(path, stdout); err != nil {
				fmt.Fprintf(stderr, "sealbench serve: %v\n", err)
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(ch)
		<-done
	}
}

func dumpMemory(path string, stdout io.Writer) error {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(stdout, "memory: %d goroutines, heap in use %d bytes, stacks in use %d bytes\n",
		runtime.NumGoroutine(), ms.HeapInuse, ms.StackInuse)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	return nil
}
