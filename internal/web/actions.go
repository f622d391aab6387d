// Acting on a verdict from its page: allow or block the sender, the
// client or the From domain; "spam" or "not spam" into the classifier's
// model in the store; release or delete a message Postfix holds; and
// resending the DMARC report deliveries that failed.

package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"mailwall/internal/classify"
	"mailwall/internal/lists"
	"mailwall/internal/store"
)

// actedData is the page an action answers with: what was done, and,
// when it could not be, the command that does it by hand. The page is
// rendered in answer to the POST, never from a URL, so no link can
// make it show a command of someone else's choosing.
type actedData struct {
	VerdictID int64
	Done      []string
	Command   string // to run by hand, as root
	Output    string // the command's own words
}

// pathID is the number the path's {id} gives; when it is none, it
// answers 404 with notFound itself.
func (d *Dashboard) pathID(w http.ResponseWriter, r *http.Request, notFound string) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		d.fail(w, r, http.StatusNotFound, notFound)
		return 0, false
	}
	return id, true
}

// verdictFor reads the verdict the path names, answering 404 itself.
func (d *Dashboard) verdictFor(w http.ResponseWriter, r *http.Request, p *page) *store.Verdict {
	if d.noStore(w, r, p) {
		return nil
	}
	id, ok := d.pathID(w, r, "no such verdict")
	if !ok {
		return nil
	}
	v, err := d.Store.Verdict(r.Context(), id)
	if err != nil {
		d.storeError(w, r, err)
		return nil
	}
	if v == nil {
		d.fail(w, r, http.StatusNotFound, "no such verdict (it may have passed its retention)")
		return nil
	}
	return v
}

func (d *Dashboard) acted(w http.ResponseWriter, r *http.Request, p *page, code int, a actedData) {
	p.Title, p.Nav, p.Content = "Verdict "+strconv.FormatInt(a.VerdictID, 10), "verdicts", a
	if a.VerdictID == 0 {
		p.Title, p.Nav = "DMARC report deliveries", "dmarc"
	}
	d.render(w, r, code, "acted", p)
}

// listTarget is one thing of a verdict a list entry can name.
type listTarget struct {
	Kind  lists.Kind
	Value string
	Label string
}

// listTargets are what of v the lists can name: the sender's address
// (the header From's, else the envelope's), the From domain (else the
// envelope sender's), the client's address and its network (/24, /56).
func listTargets(v *store.Verdict) []listTarget {
	var out []listTarget
	add := func(k lists.Kind, value, label string) {
		if n, err := lists.Normalize(k, value); err == nil {
			out = append(out, listTarget{k, n, label})
		}
	}
	sender := v.HeaderFrom
	if sender == "" {
		sender = v.MailFrom
	}
	add(lists.Sender, sender, "sender")
	if v.FromDomain != "" {
		add(lists.Domain, v.FromDomain, "From domain")
	} else if _, d, ok := strings.Cut(v.MailFrom, "@"); ok {
		// Refused before the message (policy server, HELO): the
		// envelope's domain, which domain entries match too.
		add(lists.Domain, d, "sender's domain")
	}
	if ip, err := netip.ParseAddr(v.ClientIP); err == nil {
		ip = ip.Unmap()
		add(lists.IP, ip.String(), "client")
		bits := 24
		if ip.Is6() {
			bits = 56
		}
		if pfx, err := ip.Prefix(bits); err == nil {
			add(lists.IP, pfx.String(), "client's network")
		}
	}
	return out
}

// maxNote bounds a list entry's note.
const maxNote = 200

// verdictList adds one of the verdict's sender, domain, client or
// network to the allow or block list. Only what the verdict names can
// be listed from here (the lists page takes anything).
func (d *Dashboard) verdictList(w http.ResponseWriter, r *http.Request, p *page) {
	v := d.verdictFor(w, r, p)
	if v == nil {
		return
	}
	list, err := lists.ParseList(r.PostFormValue("list"))
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	kind, value, _ := strings.Cut(r.PostFormValue("target"), ":")
	var target *listTarget
	for _, t := range listTargets(v) {
		if string(t.Kind) == kind && t.Value == value {
			target = &t
		}
	}
	if target == nil {
		d.fail(w, r, http.StatusBadRequest, "this verdict names no such sender, domain or client")
		return
	}
	expires, err := d.expiry(r.PostFormValue("days"))
	if err != nil {
		d.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	note := strings.TrimSpace(r.PostFormValue("note"))
	if note == "" {
		note = fmt.Sprintf("from verdict %d", v.ID)
	}
	e, err := d.Store.AddListEntry(r.Context(), lists.Entry{List: list, Kind: target.Kind, Value: target.Value, Note: clip(note, maxNote),
		Created: d.Now(), Expires: expires})
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	d.Log.Info("web: list entry added", "list", e.List, "kind", e.Kind, "value", e.Value, "verdict", v.ID, "user", d.Auth.user)
	done := fmt.Sprintf("%s list: %s %s added", e.List, e.Kind, e.Value)
	if !e.Expires.IsZero() {
		done += ", until " + e.Expires.In(d.location()).Format("2006-01-02 15:04 MST")
	}
	a := actedData{VerdictID: v.ID, Done: []string{done + ".", fmt.Sprintf("Every mailwall on this store applies it within %v.", lists.DefaultRefresh)}}
	if list == lists.Allow && (e.Kind == lists.Sender || e.Kind == lists.Domain) {
		a.Done = append(a.Done, "It lets in only mail that authenticates as this "+string(e.Kind)+" (DMARC pass, or SPF pass for the envelope sender): a forged From is not let in.")
	}
	d.acted(w, r, p, http.StatusOK, a)
}

// expiry reads a number of days ("" for never).
func (d *Dashboard) expiry(days string) (time.Time, error) {
	days = strings.TrimSpace(days)
	if days == "" {
		return time.Time{}, nil
	}
	n, err := strconv.Atoi(days)
	if err != nil || n < 1 || n > 3650 {
		return time.Time{}, errors.New("days: a whole number from 1 to 3650, or empty for no expiry")
	}
	return d.Now().Add(time.Duration(n) * 24 * time.Hour), nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 { // not inside a UTF-8 sequence
		n--
	}
	return s[:n]
}

// Feedback classes as the verdict's feedback column keeps them.
const (
	feedbackSpam = "spam"
	feedbackHam  = "ham"
)

// verdictLearn is "spam", "not spam" and "forget": the verdict's kept
// features learnt into the store's site model (once: the message's key
// is recorded, so a second click changes nothing, and the other class
// takes the first back, as mailwall learn does), and the feedback
// written on the verdict.
func (d *Dashboard) verdictLearn(w http.ResponseWriter, r *http.Request, p *page) {
	v := d.verdictFor(w, r, p)
	if v == nil {
		return
	}
	class := r.PostFormValue("class")
	switch class {
	case feedbackSpam, feedbackHam, "":
	default:
		d.fail(w, r, http.StatusBadRequest, "class: spam, ham, or empty to forget")
		return
	}
	ctx := r.Context()
	fb, err := d.Store.VerdictFeedback(ctx, v.ID)
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	if fb == nil {
		d.fail(w, r, http.StatusNotFound, "no such verdict")
		return
	}
	a := actedData{VerdictID: v.ID}
	word := map[string]string{feedbackSpam: "spam", feedbackHam: "not spam", "": "forgotten"}
	if len(fb.Features) == 0 {
		a.Done = append(a.Done, "Not learnt: the classifier did not run on this message (checks.classifier.enabled), so nothing of it was kept to learn from.")
	} else {
		l := &classify.Learner{St: d.Store, Name: classify.SiteModel}
		if err := l.AddKept(ctx, fb.Features, class); err != nil {
			d.fail(w, r, http.StatusInternalServerError, "the features kept with this verdict do not read: "+err.Error())
			return
		}
		out, err := l.Flush(ctx)
		if err != nil {
			d.storeError(w, r, err)
			return
		}
		o := out[0]
		prev := map[string]string{"junk": "spam", "ham": "not spam"}[o.Prev]
		switch {
		case class == "" && o.Changed:
			a.Done = append(a.Done, "Unlearnt: the model no longer counts this message as "+prev+".")
		case class == "":
			a.Done = append(a.Done, "Nothing to unlearn: the model had not learnt this message.")
		case !o.Changed:
			a.Done = append(a.Done, "Already learnt as "+word[class]+": not counted twice.")
		case o.Prev != "":
			a.Done = append(a.Done, "Learnt as "+word[class]+"; it had been learnt as "+prev+", which was taken back.")
		default:
			a.Done = append(a.Done, "Learnt as "+word[class]+".")
		}
		a.Done = append(a.Done, "Every mailwall classifying with the store's model (checks.classifier.source: store) reads it at its next refresh.")
	}
	if _, err := d.Store.SetVerdictFeedback(ctx, v.ID, class); err != nil {
		d.storeError(w, r, err)
		return
	}
	if d.Feedback != nil {
		if err := d.Feedback(ctx, v, fb.Feedback, class); err != nil {
			d.Log.Warn("web: feedback not passed on", "verdict", v.ID, "err", err)
			a.Done = append(a.Done, "The reputation of its identities was not updated: "+err.Error())
		}
	}
	d.Log.Info("web: feedback", "verdict", v.ID, "class", class, "user", d.Auth.user)
	d.acted(w, r, p, http.StatusOK, a)
}

// ValidQueueID accepts only Postfix queue IDs: the short form, upper
// case hexadecimal, or the long form (enable_long_queue_ids), Postfix's
// base-51 alphabet of digits and consonants with 'z' between the time
// and the inode number. Nothing else reaches postsuper: not "ALL", not
// a queue name, not an option.
func ValidQueueID(id string) bool {
	if len(id) < 5 || len(id) > 32 {
		return false
	}
	hex, long := true, true
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			hex = false
		}
		if !('0' <= c && c <= '9' || ('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') && !strings.ContainsRune("AEIOUaeiou", rune(c))) {
			long = false
		}
	}
	return hex || long && strings.Contains(id, "z")
}

// postsuperTimeout bounds one postsuper run.
const postsuperTimeout = 15 * time.Second

// maxCommandOutput bounds what is kept of a command's output.
const maxCommandOutput = 4 << 10

// verdictQueue releases (postsuper -H) or deletes (postsuper -d) the
// verdict's message from Postfix's hold queue, through the configured
// command (Postsuper), run without a shell. Without one, or when it
// fails, the page gives the command to run.
func (d *Dashboard) verdictQueue(w http.ResponseWriter, r *http.Request, p *page) {
	v := d.verdictFor(w, r, p)
	if v == nil {
		return
	}
	op := r.PostFormValue("op")
	flag := map[string]string{"release": "-H", "delete": "-d"}[op]
	if flag == "" {
		d.fail(w, r, http.StatusBadRequest, "op: release or delete")
		return
	}
	if !ValidQueueID(v.QueueID) {
		d.fail(w, r, http.StatusBadRequest, fmt.Sprintf("the verdict's queue ID %q is not a Postfix queue ID", v.QueueID))
		return
	}
	hand := handCommand(d.Postsuper) + " " + flag + " " + v.QueueID
	a := actedData{VerdictID: v.ID}
	if len(d.Postsuper) == 0 {
		a.Command = hand
		a.Done = []string{"No command is configured for this (web.postsuper): run this as root on " + hostOf(v) + "."}
		d.acted(w, r, p, http.StatusOK, a)
		return
	}
	if d.Node != "" && v.Node != "" && !strings.EqualFold(v.Node, d.Node) {
		// Queue IDs are unique per host only: here the same ID may be
		// another message.
		a.Command = hand
		a.Done = []string{"The message is held on " + v.Node + ", not on " + d.Node + " where this dashboard runs: run this as root on " + v.Node + "."}
		d.acted(w, r, p, http.StatusOK, a)
		return
	}
	out, err := runCommand(r.Context(), append(append([]string(nil), d.Postsuper...), flag, v.QueueID))
	a.Output = out
	if err != nil {
		d.Log.Warn("web: postsuper failed", "op", op, "queue_id", v.QueueID, "err", err, "output", out)
		a.Command = hand
		p.Error = fmt.Sprintf("%s failed (%v): run this as root on %s instead.", strings.Join(d.Postsuper, " "), err, hostOf(v))
		d.acted(w, r, p, http.StatusBadGateway, a)
		return
	}
	d.Log.Info("web: held message "+op+"d", "queue_id", v.QueueID, "verdict", v.ID, "user", d.Auth.user, "output", out)
	past := map[string]string{"release": "Released from the hold queue", "delete": "Deleted from the queue"}[op]
	a.Done = []string{past + ": " + v.QueueID + " (postsuper says what it did below; it says nothing of an ID it did not find)."}
	if op == "release" {
		// postsuper -H moves the message to the deferred queue, tried
		// at the queue manager's next scan (queue_run_delay, 5 minutes
		// by default); postqueue -i, which needs no privilege
		// (authorized_flush_users), asks for it now.
		if pq := postqueueFor(d.Postsuper); pq != nil {
			if qout, err := runCommand(r.Context(), append(pq, "-i", v.QueueID)); err != nil {
				d.Log.Warn("web: postqueue -i failed: the released message waits for the next queue run", "queue_id", v.QueueID, "err", err, "output", qout)
				a.Done = append(a.Done, "It is delivered at Postfix's next queue run ("+strings.Join(pq, " ")+" -i failed: "+err.Error()+").")
			} else {
				a.Done = append(a.Done, "Its delivery is asked for now (postqueue -i).")
			}
		}
	}
	d.acted(w, r, p, http.StatusOK, a)
}

// hostOf names the MX host that holds v's message.
func hostOf(v *store.Verdict) string {
	if v.Node != "" {
		return v.Node
	}
	return "the MX host"
}

// handCommand is the command to run in a root shell: the configured
// postsuper with its options (-c DIR) and without sudo, else postsuper.
func handCommand(prefix []string) string {
	cmd := withoutSudo(prefix)
	if len(cmd) == 0 || !isPostsuper(cmd[0]) {
		return "postsuper" // mailwall web postsuper, or another way in
	}
	return strings.Join(cmd, " ")
}

// withoutSudo is prefix without a leading sudo and its options.
func withoutSudo(prefix []string) []string {
	if len(prefix) > 0 && (prefix[0] == "sudo" || strings.HasSuffix(prefix[0], "/sudo")) {
		prefix = prefix[1:]
		for len(prefix) > 0 && strings.HasPrefix(prefix[0], "-") {
			prefix = prefix[1:]
		}
	}
	return prefix
}

func isPostsuper(path string) bool {
	return path == "postsuper" || strings.HasSuffix(path, "/postsuper")
}

// postqueueFor is the postqueue beside the configured postsuper, with
// its options (-c DIR) and without sudo; nil when the command is not a
// postsuper (mailwall web postsuper's helper asks postqueue itself).
func postqueueFor(prefix []string) []string {
	cmd := slices.Clone(withoutSudo(prefix))
	if len(cmd) == 0 || !isPostsuper(cmd[0]) {
		return nil
	}
	cmd[0] = strings.TrimSuffix(cmd[0], "postsuper") + "postqueue"
	return cmd
}

// runCommand runs argv without a shell, bounded in time and output.
func runCommand(ctx context.Context, argv []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, postsuperTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out capped
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// capped keeps the first maxCommandOutput octets written to it.
type capped struct{ bytes.Buffer }

func (c *capped) Write(b []byte) (int, error) {
	if room := maxCommandOutput - c.Len(); room > 0 {
		c.Buffer.Write(b[:min(len(b), room)])
	}
	return len(b), nil
}

type deliveriesData struct {
	Failed []store.FailedDelivery
	Loc    *time.Location // the admin's time zone (web.timezone)
	Zone   string
}

// deliveries lists the DMARC report deliveries that failed, each with a
// button that queues it again.
func (d *Dashboard) deliveries(w http.ResponseWriter, r *http.Request, p *page) {
	if d.noStore(w, r, p) {
		return
	}
	failed, err := d.Store.FailedDeliveries(r.Context(), 200)
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	loc := d.location()
	p.Title, p.Nav, p.Content = "DMARC report deliveries that failed", "dmarc", deliveriesData{Failed: failed, Loc: loc, Zone: d.Now().In(loc).Format("MST")}
	d.render(w, r, http.StatusOK, "deliveries", p)
}

// resend queues a failed delivery again: the report sender sends it at
// its next run.
func (d *Dashboard) resend(w http.ResponseWriter, r *http.Request, p *page) {
	if d.noStore(w, r, p) {
		return
	}
	id, ok := d.pathID(w, r, "no such delivery")
	if !ok {
		return
	}
	ok, err := d.Store.RetryDelivery(r.Context(), id, d.Now())
	if err != nil {
		d.storeError(w, r, err)
		return
	}
	if !ok {
		d.fail(w, r, http.StatusConflict, "that delivery has not failed (it was sent, dropped or queued again meanwhile)")
		return
	}
	d.Log.Info("web: report delivery queued again", "delivery", id, "user", d.Auth.user)
	d.acted(w, r, p, http.StatusOK, actedData{Done: []string{fmt.Sprintf("Delivery %d is queued again: the report sender sends it at its next run (reports.every), with a fresh count of attempts; mailwall report send-now sends it at once.", id)}})
}

// actionFuncs are the functions the action templates call.
var actionFuncs = template.FuncMap{
	"listTargets": listTargets,
	// held: the verdict's message may be in Postfix's hold queue (the
	// milter quarantined it) under a queue ID postsuper can be given.
	"held": func(v *store.Verdict) bool { return v.Action == "quarantine" && ValidQueueID(v.QueueID) },
	"feedbackWord": func(f string) string {
		return map[string]string{feedbackSpam: "spam", feedbackHam: "not spam"}[f]
	},
}
