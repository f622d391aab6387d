package web

import (
	"time"

	"mailwall/internal/store"
)

// Chart geometry, in SVG user units.
const (
	chartWidth  = 720
	chartHeight = 120
	chartGap    = 1
)

// chart is one stage's results over time as stacked bars: pass at the
// bottom, then fail, other and none. All charts of a page share one
// vertical scale (the busiest bucket), so their bars compare.
type chart struct {
	Stage  string
	Total  store.ClassCounts
	Bars   []bar
	Width  int
	Height int
}

type bar struct {
	Start  time.Time
	End    time.Time
	Counts store.ClassCounts
	X, W   float64
	Parts  []part // bottom to top; empty classes left out
}

type part struct {
	Class string
	Y, H  float64
}

// Evaluated is the number of messages the stage judged (none left out):
// the base of its pass rate.
func (c chart) Evaluated() int64 { return c.Total.Total() - c.Total.None }

func charts(series []store.StageSeries, since time.Time, width time.Duration) []chart {
	var peak int64
	for _, s := range series {
		for _, b := range s.Buckets {
			peak = max(peak, b.Total())
		}
	}
	var out []chart
	for _, s := range series {
		c := chart{Stage: s.Stage, Total: s.Total, Width: chartWidth, Height: chartHeight}
		step := float64(chartWidth) / float64(max(len(s.Buckets), 1))
		for i, counts := range s.Buckets {
			b := bar{Start: since.Add(time.Duration(i) * width), Counts: counts, X: float64(i) * step, W: max(step-chartGap, 1)}
			b.End = b.Start.Add(width)
			y := float64(chartHeight)
			for _, p := range []struct {
				class string
				n     int64
			}{{store.ClassPass, counts.Pass}, {store.ClassFail, counts.Fail}, {store.ClassOther, counts.Other}, {store.ClassNone, counts.None}} {
				if p.n == 0 {
					continue
				}
				h := float64(chartHeight) * float64(p.n) / float64(peak)
				y -= h
				b.Parts = append(b.Parts, part{Class: p.class, Y: y, H: h})
			}
			c.Bars = append(c.Bars, b)
		}
		out = append(out, c)
	}
	return out
}
