package cputime

import (
	"runtime"
	"testing"
)

// TestCPUTime: work on a locked thread advances Thread, and Process by
// at least as much (it counts that thread too); neither goes back.
func TestCPUTime(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p0, t0 := Process(), Thread()
	x := uint64(1)
	for i := 0; i < 1e6 && Thread()-t0 < 20e6; i++ { // 20 ms of this thread's CPU
		for range 1000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	t1, p1 := Thread(), Process()
	if t1-t0 < 20e6 {
		t.Errorf("Thread went from %v to %v (%d)", t0, t1, x)
	}
	// getrusage's figures are the scheduler's, in ticks: 10 ms of slack.
	if p1-p0 < t1-t0-10e6 {
		t.Errorf("Process advanced %v, the thread alone %v", p1-p0, t1-t0)
	}
}
