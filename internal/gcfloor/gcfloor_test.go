package gcfloor

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mb = 1 << 20
	for _, tt := range []struct {
		floor, live, roots uint64
		want               int
	}{
		{16 * mb, 2 * mb, 0, 400},        // 2 MB * 8 = 16 MB, but 4 MB * 4 is the runtime minimum
		{16 * mb, 3 * mb, 0, 400},        // 433 rounded up, capped at 400
		{16 * mb, 0, 0, 400},             // a near-empty heap: capped
		{16 * mb, 7 * mb, 0, 150},        // 129 rounded up
		{16 * mb, 8 * mb, 0, 100},        // half the floor: the default
		{16 * mb, 40 * mb, 0, 100},       // a busy server's heap: the default
		{32 * mb, 1 * mb, 3 * mb, 775},   // roots count: 1 + 4 * 7.75 = 32 MB, not 1 + 4 * 31
		{32 * mb, 0, 4 * mb, 800},        // at start: globals alone
		{32 * mb, 8 * mb, 8 * mb, 150},   // 8 + 16 * 1.5 = 32 MB
		{32 * mb, 12 * mb, 8 * mb, 100},  // the default's goal is 32 MB already
		{32 * mb, 7 * mb, 128 * mb, 100}, // stacks of many sessions: the default
	} {
		got := Percent(tt.floor, tt.live, tt.roots)
		if got != tt.want {
			t.Errorf("Percent(%d MB, %.1f MB, %.1f MB) = %d, want %d", tt.floor/mb, float64(tt.live)/mb, float64(tt.roots)/mb, got, tt.want)
		}
		scanned := max(tt.live+tt.roots, minLive)
		// The runtime's goal: the pacer's, never under its minimum.
		goal := max(tt.live+scanned*uint64(got)/100, runtimeHeapMinimum*uint64(got)/100)
		if goal < tt.floor && got > 100 {
			t.Errorf("Percent(%d, %d, %d) = %d: goal %d under the floor", tt.floor, tt.live, tt.roots, got, goal)
		}
		if got > 100 && goal > tt.floor+scanned/4+1 {
			t.Errorf("Percent(%d, %d, %d) = %d: goal %d MB well over the floor", tt.floor, tt.live, tt.roots, got, goal/mb)
		}
	}
}

func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// waitPercent collects until the floor's loop has set want, or fails.
func waitPercent(t *testing.T, want func(int) bool) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
		if p := gogc(); want(p) {
			return p
		}
	}
	t.Fatalf("GC percent stayed %d", gogc())
	return 0
}

func TestFloorRaisesAndRestores(t *testing.T) {
	t.Setenv("GOGC", "") // the floor stands back only for a set GOGC
	f := Start(256 << 20)
	if f == nil {
		t.Fatal("Start returned nil without GOGC")
	}
	p := waitPercent(t, func(p int) bool { return p > 100 })
	t.Logf("a test binary's small heap under a 256 MB floor: GOGC %d", p)

	// A live heap over half the floor gets the default back.
	live := make([]byte, 200<<20)
	for i := range live {
		live[i] = 1
	}
	waitPercent(t, func(p int) bool { return p == 100 })
	runtime.KeepAlive(live)

	f.Stop()
	if p := gogc(); p != 100 {
		t.Errorf("after Stop: GOGC %d, want 100", p)
	}
}

// TestFloorGoalNearFloor reads the runtime's own heap goal: it is the
// floor, not a multiple of it (the roots the runtime scans count).
func TestFloorGoalNearFloor(t *testing.T) {
	t.Setenv("GOGC", "")
	const floor = 32 << 20
	f := Start(floor)
	defer f.Stop()
	waitPercent(t, func(p int) bool { return p > 100 })
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	goal := s[0].Value.Uint64()
	t.Logf("heap goal %.1f MB under a 32 MB floor (GOGC %d)", float64(goal)/(1<<20), gogc())
	if goal < floor*9/10 || goal > floor*3/2 {
		t.Errorf("heap goal %d MB, want about the 32 MB floor", goal>>20)
	}
}

func TestFloorStandsBackForGOGC(t *testing.T) {
	t.Setenv("GOGC", "100")
	if f := Start(256 << 20); f != nil {
		f.Stop()
		t.Fatal("Start ran although GOGC is set")
	}
	if f := Start(0); f != nil {
		t.Fatal("Start ran with no floor")
	}
	var f *Floor
	f.Stop() // a nil Floor is stopped already
}
