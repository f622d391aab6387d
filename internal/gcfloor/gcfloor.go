// Package gcfloor keeps the Go garbage collector from running more often
// than a small heap needs.
//
// The runtime's default (GOGC=100) starts the next collection when the
// heap has grown to twice what the last one left live. A mail filter's
// live heap is a few megabytes: its configuration, caches and the
// messages in flight. Under load it makes tens of kilobytes of garbage a
// message, so with the default it collects 50 times a second at 4,000
// messages a second, and every collection costs a fixed part besides the
// marking.
//
// A floor on the heap goal trades a few megabytes for most of those
// collections: after each one, the GC percentage is set so the next goal
// is the floor, or the default's goal, whichever is more (Percent: the
// goal counts the stacks and globals the runtime scans, and never goes
// under the runtime's own minimum). Once the default's goal reaches the
// floor it applies unchanged, so the floor adds nothing to the memory of
// a busy server, whose live heap is large.
package gcfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// defaultPercent is the runtime's GOGC when the environment does not set
// one.
const defaultPercent = 100

// minLive bounds the percentage a near-empty heap would ask for.
const minLive = 1 << 20

// Floor adjusts the GC percentage after each collection until stopped.
type Floor struct {
	floor  uint64
	gc     chan struct{} // a collection has ended
	done   chan struct{}
	wg     sync.WaitGroup
	sample []metrics.Sample

	percent int // last set; touched by the loop only
}

// sentinel is garbage whose cleanup tells the loop that a collection
// ran. 64 bytes: the runtime may never clean up a tiny allocation.
type sentinel [64]byte

// Start keeps the heap goal at floor bytes or more. It returns nil, and
// changes nothing, when floor is 0 or GOGC is set in the environment:
// an admin who sets GOGC has chosen.
func Start(floor uint64) *Floor {
	if floor == 0 || os.Getenv("GOGC") != "" {
		return nil
	}
	f := &Floor{
		floor:   floor,
		gc:      make(chan struct{}, 1),
		done:    make(chan struct{}),
		sample:  []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}},
		percent: defaultPercent,
	}
	f.arm()
	f.wg.Go(f.loop)
	return f
}

// Stop ends the adjustments and puts the runtime's default back. A nil
// Floor is stopped already.
func (f *Floor) Stop() {
	if f == nil {
		return
	}
	close(f.done)
	f.wg.Wait()
	debug.SetGCPercent(defaultPercent)
}

// arm makes one piece of garbage whose cleanup runs after the next
// collection that finds it unreachable.
func (f *Floor) arm() {
	runtime.AddCleanup(new(sentinel), func(gc chan struct{}) {
		select {
		case gc <- struct{}{}:
		default:
		}
	}, f.gc)
}

func (f *Floor) loop() {
	for {
		select {
		case <-f.done:
			return
		case <-f.gc:
		}
		metrics.Read(f.sample)
		roots := f.sample[1].Value.Uint64() + f.sample[2].Value.Uint64()
		if p := Percent(f.floor, f.sample[0].Value.Uint64(), roots); p != f.percent {
			// SetGCPercent stops the world briefly: only on a change.
			debug.SetGCPercent(p)
			f.percent = p
		}
		f.arm()
	}
}

// Percent is the GC percentage that puts the next heap goal at floor, or
// the default when the default's goal is already there. The runtime's goal
// is live + (live + roots) * GOGC/100, where roots are the stacks and
// globals it scans (Go 1.18's pacer, "GC roots" in the GC guide): leaving
// the roots out asked for a goal of 124 MB with 1 MB live and 3 MB of
// globals, not the 32 MB floor. It is capped where the runtime's own
// minimum goal would pass the floor. The result is rounded up to a multiple of
// 25 so small changes of the live heap do not reset it each cycle.
func Percent(floor, live, roots uint64) int {
	scanned := max(live+roots, minLive)
	if live+scanned*defaultPercent/100 >= floor {
		return defaultPercent
	}
	p := int((floor - live) * 100 / scanned)
	p = (p + 24) / 25 * 25
	// The runtime never sets a goal under heapMinimum, 4 MB scaled by
	// GOGC/100: past floor/4 MB * 100 that minimum alone would be the goal
	// (3,200 made it 128 MB under a 32 MB floor).
	p = min(p, int(floor*100/runtimeHeapMinimum))
	return max(p, defaultPercent)
}

// runtimeHeapMinimum is the runtime's defaultHeapMinimum (runtime/mgcpacer.go).
const runtimeHeapMinimum = 4 << 20
