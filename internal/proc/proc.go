// Package proc says whether a process of this host still runs, the one
// proof lakelink accepts that a writer (package lease) or a cache owner
// (package sqldb) is gone: both must answer it the same way.
package proc

import (
	"errors"
	"os"
	"syscall"
)

// Alive reports whether a process with that pid runs on this host. One of
// another user (EPERM) runs too; a pid of 0 or less names no process.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Host names this host as Alive's answers apply to it: os.Hostname, or
// "localhost" when that fails.
func Host() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}
