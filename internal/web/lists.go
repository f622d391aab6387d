// The lists page: the allow and block entries (internal/lists) kept in
// the store, with forms to add and remove them.

package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"mailwall/internal/lists"
)

// maxListShown bounds the entries one page lists: lists imported from
// Postfix access tables may be long.
const maxListShown = 1000

type listsData struct {
	Query   string
	Now     time.Time
	Loc     *time.Location // the admin's time zone (web.timezone)
	Zone    string
	Entries []lists.Entry
	More    int // matching entries not shown
}

func (d *Dashboard) lists(w http.ResponseWriter, r *http.Request, p *page) {
	if d.noStore(w, r, p) {
		return
	}
	all, err := d.Store.ListEntries(r.Context())
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	loc := d.location()
	ld := listsData{Query: q, Now: d.Now(), Loc: loc, Zone: d.Now().In(loc).Format("MST")}
	for _, e := range all {
		if q != "" && !strings.Contains(e.Value, strings.ToLower(q)) && !strings.Contains(strings.ToLower(e.Note), strings.ToLower(q)) {
			continue
		}
		if len(ld.Entries) == maxListShown {
			ld.More++
			continue
		}
		ld.Entries = append(ld.Entries, e)
	}
	p.Notice = r.URL.Query().Get("done")
	p.Title, p.Nav, p.Content = "Allow and block lists", "lists", ld
	d.render(w, r, http.StatusOK, "lists", p)
}

// listAdd adds (or updates the note and expiry of) an entry.
func (d *Dashboard) listAdd(w http.ResponseWriter, r *http.Request, p *page) {
	if d.noStore(w, r, p) {
		return
	}
	list, err := lists.ParseList(r.PostFormValue("list"))
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	kind := lists.Kind(r.PostFormValue("kind"))
	value, err := lists.Normalize(kind, r.PostFormValue("value"))
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	expires, err := d.expiry(r.PostFormValue("days"))
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	e, err := d.Store.AddListEntry(r.Context(), lists.Entry{List: list, Kind: kind, Value: value,
		Note: clip(strings.TrimSpace(r.PostFormValue("note")), maxNote), Created: d.Now(), Expires: expires})
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	d.Log.Info("web: list entry added", "list", e.List, "kind", e.Kind, "value", e.Value, "user", d.Auth.user)
	// The notice is built from the stored entry, and shown escaped.
	http.Redirect(w, r, "/lists?done="+url.QueryEscape(fmt.Sprintf("Added to the %s list: %s %s", e.List, e.Kind, e.Value)), http.StatusSeeOther)
}

func (d *Dashboard) listRemove(w http.ResponseWriter, r *http.Request, p *page) {
	if d.noStore(w, r, p) {
		return
	}
	id, ok := d.pathID(w, r, "no such entry")
	if !ok {
		return
	}
	ok, err := d.Store.RemoveListEntryByID(r.Context(), id)
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	if !ok {
		d.fail(w, r, http.StatusNotFound, "no such entry (removed meanwhile?)")
		return
	}
	d.Log.Info("web: list entry removed", "id", id, "user", d.Auth.user)
	http.Redirect(w, r, "/lists?done="+url.QueryEscape(fmt.Sprintf("Entry %d removed.", id)), http.StatusSeeOther)
}
