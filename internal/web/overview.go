package web

import (
	"net/http"
	"slices"
	"time"

	"mailwall/internal/store"
)

// Running is the configuration a daemon runs with now, and its reloads.
type Running struct {
	YAML   []byte    // the configuration in effect, secrets masked
	Path   string    // the file it was read from; "": the embedded defaults
	Loaded time.Time // when it took effect (start, or the last good reload)
	// Reloads are the SIGHUP reloads since start, oldest first (the
	// newest few only).
	Reloads []Reload
}

// Reload is one SIGHUP reload.
type Reload struct {
	At    time.Time
	OK    bool
	Error string // why it failed: the running config stayed
	// Restart names the changed sections a reload does not apply.
	Restart []string
}

// running is the configuration to show: Running's, else Config.
func (d *Dashboard) running() Running {
	if d.Running != nil {
		return d.Running()
	}
	return Running{YAML: d.Config}
}

// zone is the admin's time zone: web.timezone, else the system's.
func (d *Dashboard) zone() *time.Location {
	if d.Location != nil {
		return d.Location
	}
	return time.Local
}

// overviewRange is a period the overview offers, in the admin's zone.
type overviewRange struct {
	Name, Label string
	// bounds gives the period's start and end and its number of bars,
	// for the time now in the zone.
	bounds func(now time.Time) (since, until time.Time, bars int)
}

// overviewRanges: today (midnight to midnight, an hour a bar, the hours
// to come empty), the last 24 hours, 7 days in quarter days, 30 days.
// Days and hours start where the admin's clock says they do.
var overviewRanges = []overviewRange{
	{"today", "today", func(now time.Time) (time.Time, time.Time, int) {
		y, m, d := now.Date()
		since, until := time.Date(y, m, d, 0, 0, 0, 0, now.Location()), time.Date(y, m, d+1, 0, 0, 0, 0, now.Location())
		return since, until, int(until.Sub(since).Round(time.Hour) / time.Hour) // 23 or 25 on a DST change
	}},
	{"24h", "last 24 hours", func(now time.Time) (time.Time, time.Time, int) {
		until := time.Date(now.Year(), now.Month(), now.Day(), now.Hour(), 0, 0, 0, now.Location()).Add(time.Hour)
		return until.Add(-24 * time.Hour), until, 24
	}},
	{"7d", "last 7 days", func(now time.Time) (time.Time, time.Time, int) {
		until := time.Date(now.Year(), now.Month(), now.Day(), now.Hour()-now.Hour()%6, 0, 0, 0, now.Location()).Add(6 * time.Hour)
		return until.Add(-7 * 24 * time.Hour), until, 28
	}},
	{"30d", "last 30 days", func(now time.Time) (time.Time, time.Time, int) {
		y, m, d := now.Date()
		until := time.Date(y, m, d+1, 0, 0, 0, 0, now.Location())
		return time.Date(y, m, d-29, 0, 0, 0, 0, now.Location()), until, 30
	}},
}

// overviewData is the front page.
type overviewData struct {
	Range   string
	Ranges  []overviewRange
	Zone    string // the time zone's name and offset, as times are shown
	From    string
	To      string
	Actions []actionCount
	Total   int64
	Charts  []chart
	Mail    chart // the messages of each bar by action
	Reasons []store.Reason
	Rules   []store.RuleCount
	// RulesPartial: the rules are counted over the newest verdicts only.
	RulesPartial bool
	Domains      []store.Sender
	IPs          []store.Sender
	// Deliveries counts the report deliveries of reports made in the
	// period by state; Failed lists the newest given up.
	Deliveries map[string]int64
	Failed     []failedDelivery
	// Reloads are this process's reloads in the period that failed.
	Reloads []reloadShown
	Loaded  string // when the running config took effect
}

type actionCount struct {
	Action string
	Count  int64
}

type failedDelivery struct {
	store.FailedDelivery
	Period string
}

type reloadShown struct {
	At    string
	Error string
}

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request, p *page) {
	if d.noStore(w, r, p) {
		return
	}
	loc := d.zone()
	now := d.Now().In(loc)
	rg := overviewRanges[0]
	for _, x := range overviewRanges {
		if x.Name == r.URL.Query().Get("range") {
			rg = x
		}
	}
	since, until, bars := rg.bounds(now)
	width := until.Sub(since) / time.Duration(bars)
	ctx := r.Context()
	series, err := d.Store.StageRates(ctx, since, until, width)
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	rates, err := d.Store.ActionRates(ctx, since, until, width, actions)
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	counts, err := d.Store.ActionCounts(ctx, since)
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	od := overviewData{Range: rg.Name, Ranges: overviewRanges, Zone: zoneName(now),
		From: since.Format("2006-01-02 15:04"), To: until.Format("2006-01-02 15:04"),
		Charts: charts(series, since, width, loc, tickFormat(rg.Name))}
	var peak int64
	for _, b := range rates {
		var n int64
		for _, x := range b {
			n += x
		}
		peak = max(peak, n)
	}
	od.Mail = actionsChart(rates, actions, since, width, loc, tickFormat(rg.Name), scaleTop(peak))
	for _, a := range actions {
		od.Actions = append(od.Actions, actionCount{a, counts[a]})
		od.Total += counts[a]
		delete(counts, a)
	}
	others := make([]string, 0, len(counts))
	for a := range counts { // "internal" and any added later
		others = append(others, a)
	}
	slices.Sort(others)
	for _, a := range others {
		od.Actions = append(od.Actions, actionCount{a, counts[a]})
		od.Total += counts[a]
	}
	if od.Reasons, err = d.Store.TopReasons(ctx, since, until, 10); err != nil {
		d.storeError(w, r, err)
		return
	}
	if od.Rules, od.RulesPartial, err = d.Store.TopRules(ctx, since, until, 10); err != nil {
		d.storeError(w, r, err)
		return
	}
	if od.Domains, err = d.Store.TopSenders(ctx, "domain", since, 10); err != nil {
		d.storeError(w, r, err)
		return
	}
	if od.IPs, err = d.Store.TopSenders(ctx, "ip", since, 10); err != nil {
		d.storeError(w, r, err)
		return
	}
	deliveries, failed, err := d.Store.DeliveryStates(ctx, since, 5)
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	od.Deliveries = deliveries
	for _, f := range failed {
		od.Failed = append(od.Failed, failedDelivery{f, f.Begin.In(loc).Format("2006-01-02")})
	}
	run := d.running()
	if !run.Loaded.IsZero() {
		od.Loaded = run.Loaded.In(loc).Format("2006-01-02 15:04:05")
	}
	for _, rl := range run.Reloads {
		if !rl.OK && !rl.At.Before(since) && rl.At.Before(until) {
			od.Reloads = append(od.Reloads, reloadShown{rl.At.In(loc).Format("2006-01-02 15:04:05"), rl.Error})
		}
	}
	p.Title, p.Nav, p.Content = "Overview", "overview", od
	d.render(w, r, http.StatusOK, "overview", p)
}

// zoneName is the zone's abbreviation and offset, "CET (UTC+01:00)".
func zoneName(t time.Time) string {
	name, _ := t.Zone()
	off := t.Format("-07:00")
	if off == "+00:00" {
		off = ""
	}
	if name == "UTC" || name == "" {
		return "UTC" + off
	}
	return name + " (UTC" + off + ")"
}

// tickFormat is how the time axis of a range labels its ticks.
func tickFormat(rangeName string) string {
	switch rangeName {
	case "7d":
		return "Mon 2"
	case "30d":
		return "Jan 2"
	}
	return "15:04"
}

// configData is the configuration page.
type configData struct {
	Running
	Zone   string
	Loaded string
	Last   *reloadShown // the last reload, when it failed
	// LastRestart names what the last good reload left for a restart.
	LastRestart []string
	Count       int // reloads so far
}

func (d *Dashboard) config(w http.ResponseWriter, r *http.Request, p *page) {
	loc := d.zone()
	run := d.running()
	cd := configData{Running: run, Zone: zoneName(d.Now().In(loc)), Count: len(run.Reloads)}
	if !run.Loaded.IsZero() {
		cd.Loaded = run.Loaded.In(loc).Format("2006-01-02 15:04:05")
	}
	if n := len(run.Reloads); n > 0 {
		last := run.Reloads[n-1]
		if !last.OK {
			cd.Last = &reloadShown{last.At.In(loc).Format("2006-01-02 15:04:05"), last.Error}
		} else {
			cd.LastRestart = last.Restart
		}
	}
	p.Title, p.Nav, p.Content = "Configuration", "config", cd
	d.render(w, r, http.StatusOK, "config", p)
}
