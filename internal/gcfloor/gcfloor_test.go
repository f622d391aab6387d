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
		floor, live uint64
		want        int
	}{
		{16 * mb, 2 * mb, 700}, // 2 MB * 8 = 16 MB
		{16 * mb, 3 * mb, 450}, // 433 rounded up: 3 MB * 5.5 = 16.5 MB
		{16 * mb, 0, 1500},     // a near-empty heap counts as 1 MB
		{16 * mb, 512 << 10, 1500},
		{16 * mb, 7 * mb, 150},  // 129 rounded up
		{16 * mb, 8 * mb, 100},  // half the floor: the default
		{16 * mb, 40 * mb, 100}, // a busy server's heap: the default
		{16 * mb, 7*mb + mb/2, 125},
	} {
		got := Percent(tt.floor, tt.live)
		if got != tt.want {
			t.Errorf("Percent(%d MB, %.1f MB) = %d, want %d", tt.floor/mb, float64(tt.live)/mb, got, tt.want)
		}
		if goal := max(tt.live, minLive) * uint64(100+got) / 100; goal < tt.floor && got > 100 {
			t.Errorf("Percent(%d, %d) = %d: goal %d under the floor", tt.floor, tt.live, got, goal)
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
