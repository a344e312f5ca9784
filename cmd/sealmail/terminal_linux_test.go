//go:build linux

package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"unsafe"
)

// runOnTerminal runs sealmail as run does, but with standard error on a
// pseudo-terminal, as an operator at a terminal has it: what the command
// drew there (progress lines) is the result's stderr.
func (te *testEnv) runOnTerminal(stdin string, args ...string) result {
	te.t.Helper()
	master, slave, err := openPTY()
	if err != nil {
		te.t.Fatalf("pseudo-terminal: %v", err)
	}
	defer master.Close()
	cmd := te.command(stdin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, slave
	drawn := make(chan []byte, 1)
	go func() {
		// Reading ends with EIO once no process holds the terminal.
		b, _ := io.ReadAll(master)
		drawn <- b
	}()
	err = cmd.Run()
	slave.Close()
	tty := <-drawn
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		te.t.Fatalf("run %v: %v", args, err)
	}
	return result{out.String(), strings.ReplaceAll(string(tty), "\r\n", "\n"), code}
}

// openPTY opens a new pseudo-terminal pair (pty(7)).
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	var unlock int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); errno != 0 {
		master.Close()
		return nil, nil, fmt.Errorf("unlock: %w", errno)
	}
	var n uint32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); errno != 0 {
		master.Close()
		return nil, nil, fmt.Errorf("number: %w", errno)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}
