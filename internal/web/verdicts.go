package web

import (
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"mailwall/internal/store"
)

// The verdict list's search keys: each a query parameter, shown as a
// field of the form, with the filter field it sets.
var verdictKeys = []struct {
	Param, Label, Hint string
	set                func(*store.VerdictFilter, string)
}{
	{"queue", "Queue ID", "3F2A51C0B9", func(f *store.VerdictFilter, v string) { f.QueueID = v }},
	{"msgid", "Message-ID", "abc@example.com", func(f *store.VerdictFilter, v string) { f.MessageID = v }},
	{"sender", "MAIL FROM", "address or domain", func(f *store.VerdictFilter, v string) { f.MailFrom = v }},
	{"rcpt", "Recipient", "address or part", func(f *store.VerdictFilter, v string) { f.Rcpt = v }},
	{"from", "Header From", "address or part", func(f *store.VerdictFilter, v string) { f.HeaderFrom = v }},
	{"subject", "Subject", "words in it", func(f *store.VerdictFilter, v string) { f.Subject = v }},
	{"client", "Client", "IP, or name or its domain", func(f *store.VerdictFilter, v string) { f.Client = v }},
	{"rule", "Rule", "brand_from_domain", func(f *store.VerdictFilter, v string) { f.Rule = v }},
	{"domain", "Domain", "From or MAIL FROM domain", func(f *store.VerdictFilter, v string) { f.Domain = v }},
	{"ip", "Client IP", "", func(f *store.VerdictFilter, v string) { f.ClientIP = v }},
	{"q", "Reason or rule", "words of a reason", func(f *store.VerdictFilter, v string) { f.Search = v }},
}

// sources are the verdicts' sources, in the order the form lists them.
var sources = []string{"milter", "policy", "rcpt", "helo", "connect"}

// timeLayout is how the search form reads and writes times (the HTML
// datetime-local input's value).
const timeLayout = "2006-01-02T15:04"

// maxQuery bounds the query string the list reads: the form's fields are
// short, and a longer one is refused before any is parsed.
const maxQuery = 4096

type searchKey struct{ Param, Label, Hint, Value string }

type verdictsData struct {
	Filter  url.Values
	Keys    []searchKey
	Actions []string
	Sources []string
	Zone    string // the time zone's name, as times are shown
	Loc     *time.Location
	List    []store.Verdict
	Next    template.URL // query for the next page, "" at the end
	Found   int
}

// location is the time zone the verdict pages show and read times in:
// the dashboard's (web.timezone), the system's when it has none.
func (d *Dashboard) location() *time.Location {
	if d.Location != nil {
		return d.Location
	}
	return time.Local
}

func (d *Dashboard) verdicts(w http.ResponseWriter, r *http.Request, p *page) {
	if d.noStore(w, r, p) {
		return
	}
	if len(r.URL.RawQuery) > maxQuery {
		d.fail(w, r, http.StatusRequestURITooLong, "the search is too long")
		return
	}
	q := r.URL.Query()
	loc := d.location()
	f := store.VerdictFilter{Action: q.Get("action"), Source: q.Get("source"), Limit: 100}
	vd := verdictsData{Filter: q, Actions: actions, Sources: sources, Loc: loc, Zone: d.Now().In(loc).Format("MST")}
	for _, k := range verdictKeys {
		v := strings.TrimSpace(q.Get(k.Param))
		k.set(&f, v)
		vd.Keys = append(vd.Keys, searchKey{k.Param, k.Label, k.Hint, v})
	}
	var problems []string
	if h := q.Get("hours"); h != "" {
		n, err := strconv.Atoi(h)
		if err != nil || n <= 0 || n > 24*4000 {
			problems = append(problems, "hours: a whole number of hours, like 24")
		} else {
			f.Since = d.Now().Add(-time.Duration(n) * time.Hour)
		}
	}
	for _, t := range []struct {
		param string
		to    *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		v := strings.TrimSpace(q.Get(t.param))
		if v == "" {
			continue
		}
		at, err := time.ParseInLocation(timeLayout, v, loc)
		if err != nil {
			problems = append(problems, t.param+": a date and time such as "+d.Now().In(loc).Format(timeLayout))
			continue
		}
		*t.to = at
	}
	if b := q.Get("before"); b != "" {
		f.BeforeID, _ = strconv.ParseInt(b, 10, 64)
	}
	p.Error = strings.Join(problems, "; ")
	list, err := d.Store.Verdicts(r.Context(), f)
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	vd.List, vd.Found = list, len(list)
	if len(list) == f.Limit {
		next := maps.Clone(q)
		next.Set("before", strconv.FormatInt(list[len(list)-1].ID, 10))
		vd.Next = template.URL(next.Encode())
	}
	p.Title, p.Nav, p.Content = "Verdicts", "verdicts", vd
	d.render(w, r, http.StatusOK, "verdicts", p)
}

// verdictData is the detail page: the verdict, and the other decisions
// about the same mail (its client's refusals before it, by queue ID or
// client and sender within relatedWindow).
type verdictData struct {
	V       *store.Verdict
	Related []store.Verdict
	Loc     *time.Location
	Zone    string
}

// relatedWindow is how far apart in time a refusal and a message of the
// same client and sender are taken as one attempt: a greylisted client
// retries within minutes to hours.
const relatedWindow = 6 * time.Hour

func (d *Dashboard) verdict(w http.ResponseWriter, r *http.Request, p *page) {
	v := d.verdictFor(w, r, p)
	if v == nil {
		return
	}
	related, err := d.Store.Related(r.Context(), v, relatedWindow, 20)
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	loc := d.location()
	p.Title, p.Nav = "Verdict "+r.PathValue("id"), "verdicts"
	p.Content = verdictData{V: v, Related: related, Loc: loc, Zone: v.At.In(loc).Format("MST")}
	d.render(w, r, http.StatusOK, "verdict", p)
}

// actionsPage is the page as the actions template (actions.html) takes
// it: its Content the *store.Verdict.
func actionsPage(p *page) *page {
	cp := *p
	if vd, ok := p.Content.(verdictData); ok {
		cp.Content = vd.V
	}
	return &cp
}

// decidedBy says which stage decided and its verdict ("dmarc: fail");
// for mail nothing refused, the verdict alone ("pass").
func decidedBy(stage, verdict string) string {
	switch {
	case stage == "":
		return verdict
	case verdict == "" || verdict == stage:
		return stage
	}
	return stage + ": " + verdict
}

// localTime shows t in loc, to the second.
func localTime(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	if loc == nil {
		loc = time.Local
	}
	return t.In(loc).Format("2006-01-02 15:04:05")
}
