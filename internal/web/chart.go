package web

import (
	"strconv"
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
// vertical scale (the busiest bucket), so their bars compare. The axes
// are HTML beside the SVG (which stretches to the page's width, so text
// inside it would stretch too): YTicks from the top down, XTicks at
// evenly spaced bar edges from the first to the last.
type chart struct {
	Stage  string
	Total  store.ClassCounts
	Bars   []bar
	Width  int
	Height int
	YTicks []string
	XTicks []string
	Unit   string // what a bar counts: "messages an hour"
	Grid   float64
	// Totals are the actions chart's sums per action (empty for a stage).
	Totals []actionCount
}

type bar struct {
	Start  time.Time
	End    time.Time
	Label  string // its period in the admin's zone, for the tooltip
	Counts store.ClassCounts
	X, W   float64
	Parts  []part // bottom to top; empty classes left out
	// Actions are the actions chart's counts of the bar, every class.
	Actions []actionCount
}

type part struct {
	Class string
	Y, H  float64
}

// Evaluated is the number of messages the stage judged (none left out):
// the base of its pass rate.
func (c chart) Evaluated() int64 { return c.Total.Total() - c.Total.None }

// charts draws the series, whose buckets of width start at since; times
// are labelled in loc with the layout tick.
func charts(series []store.StageSeries, since time.Time, width time.Duration, loc *time.Location, tick string) []chart {
	var peak int64
	for _, s := range series {
		for _, b := range s.Buckets {
			peak = max(peak, b.Total())
		}
	}
	top := scaleTop(peak)
	var out []chart
	for _, s := range series {
		c := chart{Stage: s.Stage, Total: s.Total, Width: chartWidth, Height: chartHeight, Unit: "messages per " + span(width),
			YTicks: []string{strconv.FormatInt(top, 10), strconv.FormatInt(top/2, 10), "0"}, Grid: chartHeight / 2}
		step := float64(chartWidth) / float64(max(len(s.Buckets), 1))
		for i, counts := range s.Buckets {
			b := bar{Start: since.Add(time.Duration(i) * width), Counts: counts, X: float64(i) * step, W: max(step-chartGap, 1)}
			b.End = b.Start.Add(width)
			b.Label = b.Start.In(loc).Format("2006-01-02 15:04") + " to " + b.End.In(loc).Format("15:04")
			y := float64(chartHeight)
			for _, p := range []struct {
				class string
				n     int64
			}{{store.ClassPass, counts.Pass}, {store.ClassFail, counts.Fail}, {store.ClassOther, counts.Other}, {store.ClassNone, counts.None}} {
				if p.n == 0 {
					continue
				}
				h := float64(chartHeight) * float64(p.n) / float64(top)
				y -= h
				b.Parts = append(b.Parts, part{Class: p.class, Y: y, H: h})
			}
			c.Bars = append(c.Bars, b)
		}
		n := len(s.Buckets)
		every := tickEvery(n)
		for i := 0; i <= n; i += every {
			c.XTicks = append(c.XTicks, since.Add(time.Duration(i)*width).In(loc).Format(tick))
		}
		out = append(out, c)
	}
	return out
}

// actionsChart draws the messages of each bucket stacked by action, in
// the order of names (the last class, "other", for actions not named),
// on the scale top; its Totals are each action's sum.
func actionsChart(rates [][]int64, names []string, since time.Time, width time.Duration, loc *time.Location, tick string, top int64) chart {
	c := chart{Stage: "actions", Width: chartWidth, Height: chartHeight, Unit: "messages per " + span(width),
		YTicks: []string{strconv.FormatInt(top, 10), strconv.FormatInt(top/2, 10), "0"}, Grid: chartHeight / 2}
	classes := append(append([]string(nil), names...), "other")
	c.Totals = make([]actionCount, len(classes))
	for i, name := range classes {
		c.Totals[i].Action = name
	}
	step := float64(chartWidth) / float64(max(len(rates), 1))
	for i, counts := range rates {
		b := bar{Start: since.Add(time.Duration(i) * width), X: float64(i) * step, W: max(step-chartGap, 1)}
		b.End = b.Start.Add(width)
		b.Label = b.Start.In(loc).Format("2006-01-02 15:04") + " to " + b.End.In(loc).Format("15:04")
		y := float64(chartHeight)
		for j, n := range counts {
			c.Totals[j].Count += n
			b.Actions = append(b.Actions, actionCount{classes[j], n})
			if n == 0 {
				continue
			}
			h := float64(chartHeight) * float64(n) / float64(top)
			y -= h
			b.Parts = append(b.Parts, part{Class: classes[j], Y: y, H: h})
		}
		c.Bars = append(c.Bars, b)
	}
	every := tickEvery(len(rates))
	for i := 0; i <= len(rates); i += every {
		c.XTicks = append(c.XTicks, since.Add(time.Duration(i)*width).In(loc).Format(tick))
	}
	return c
}

// scaleTop is the top of a scale whose busiest bar is peak: rounded up
// to an even number, so the middle line is a whole number too.
func scaleTop(peak int64) int64 { return max(peak+peak%2, 2) }

// tickEvery is how many bars apart the time axis's ticks are: a divisor
// of n, so the ticks fall on bar edges and space evenly, giving 4 to 8
// intervals where n allows.
func tickEvery(n int) int {
	for _, k := range []int{4, 6, 5, 7, 8, 3, 2} {
		if n%k == 0 && n/k >= 1 {
			return n / k
		}
	}
	return max(n, 1)
}

// span names a bar's width: "hour", "6 hours", "day".
func span(d time.Duration) string {
	switch {
	case d == time.Hour:
		return "hour"
	case d == 24*time.Hour:
		return "day"
	case d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + " hours"
	}
	return d.String()
}
