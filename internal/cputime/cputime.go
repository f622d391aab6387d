// Package cputime reads the CPU time a benchmark has used: on a machine
// shared with other work a steadier measure than the time it took.
package cputime

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Process is the process's user and system CPU time so far, all its
// threads' (getrusage RUSAGE_SELF).
func Process() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru) // fails only for a bad argument
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Thread is the calling thread's CPU time so far
// (CLOCK_THREAD_CPUTIME_ID): what the work on it cost, whatever else
// the process and the machine run. The caller locks its goroutine to
// the thread (runtime.LockOSThread) for a difference of two readings to
// mean anything.
func Thread() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		panic(err)
	}
	return time.Duration(ts.Nano())
}
