package migrate

import (
	"regexp"
	"slices"
	"sort"
	"strings"
)

// PostfixState is what postconf reports about one Postfix instance.
type PostfixState struct {
	// Main holds the parameters main.cf sets (postconf -n).
	Main map[string]string
	// Overrides holds master.cf's -o parameters (postconf -P), keyed
	// "service/type/parameter".
	Overrides map[string]string
	// Commands holds master.cf's commands (postconf -F '*/*/command'),
	// keyed "service/type".
	Commands map[string]string
}

// PostfixChange is one parameter to set, or to remove.
type PostfixChange struct {
	// Param is a main.cf parameter ("smtpd_milters"), or a master.cf
	// override ("submission/inet/smtpd_milters").
	Param    string
	Old, New string
	Remove   bool // postconf -X (or -PX): back to the default
	Why      string
}

// Override reports whether the change is to a master.cf -o parameter.
func (c PostfixChange) Override() bool { return strings.Count(c.Param, "/") == 2 }

// PostfixPlan is what swaps the old daemons for mailwall.
type PostfixPlan struct {
	Changes []PostfixChange
	// Disable lists master.cf services ("policyd-spf/unix") to comment
	// out (postconf -M#).
	Disable []string
}

// Empty reports whether Postfix already uses mailwall.
func (p PostfixPlan) Empty() bool { return len(p.Changes) == 0 && len(p.Disable) == 0 }

// oldMilterPorts are the TCP ports Debian's OpenDKIM and OpenDMARC are
// usually told to use (their own examples use 8891 and 8893).
var oldMilterPorts = regexp.MustCompile(`:(8891|8892|8893)$`)

// oldMilter reports whether a smtpd_milters entry is OpenDKIM's or
// OpenDMARC's socket.
func oldMilter(entry string) bool {
	lower := strings.ToLower(groupAddr(entry))
	return strings.Contains(lower, "opendkim") || strings.Contains(lower, "opendmarc") ||
		(strings.HasPrefix(lower, "inet:") && oldMilterPorts.MatchString(lower))
}

// groupAddr is the address of a list entry: the entry itself, or the first
// item of a Postfix 3.0 group with its own settings, as in
// "{ inet:host:port, connect_timeout=10s }".
func groupAddr(entry string) string {
	if !strings.HasPrefix(entry, "{") {
		return entry
	}
	inner := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(entry, "{"), "}"))
	first, _, _ := strings.Cut(inner, ",")
	return strings.TrimSpace(first)
}

// postfixList splits a Postfix list on commas and white space, keeping
// { ... } groups whole.
func postfixList(v string) []string {
	var items []string
	depth, start := 0, -1
	for i, r := range v {
		switch {
		case r == '{':
			if depth == 0 && start < 0 {
				start = i
			}
			depth++
		case r == '}':
			if depth > 0 {
				depth--
			}
		case depth == 0 && (r == ',' || r == ' ' || r == '\t' || r == '\n'):
			if start >= 0 {
				items = append(items, v[start:i])
				start = -1
			}
		default:
			if start < 0 {
				start = i
			}
		}
	}
	if start >= 0 {
		items = append(items, v[start:])
	}
	return items
}

// policydSPFServices are the master.cf services that run policyd-spf
// (Debian's documentation names it policyd-spf; admins rename it).
func policydSPFServices(st PostfixState) []string {
	var svcs []string
	for svc, cmd := range st.Commands {
		if strings.Contains(cmd, "policyd-spf") {
			svcs = append(svcs, svc)
		}
	}
	sort.Strings(svcs)
	return svcs
}

// policyAddrs are the names Postfix restrictions give the policyd-spf
// services: "private/NAME" and "unix:private/NAME" for a unix service.
func policyAddrs(svcs []string) map[string]bool {
	addrs := map[string]bool{}
	for _, svc := range svcs {
		name, typ, _ := strings.Cut(svc, "/")
		if typ == "unix" {
			addrs["private/"+name] = true
			addrs["unix:private/"+name] = true
		}
	}
	return addrs
}

// MilterTempfailWhy says why the plan sets milter_default_action =
// tempfail.
const MilterTempfailWhy = "while mailwall is stopped or does not answer, Postfix answers 451 4.7.1 and senders retry later; " +
	"with accept (Postfix's default) mail would pass unchecked and internal mail would leave unsigned, with no sign of it"

// PlanPostfix works out the changes that put mailwall's milter (at
// milterAddr, "" for none) and policy server (policyAddr, "" for none) in
// place of OpenDKIM, OpenDMARC and policyd-spf, keeping every other milter
// and restriction where it is. An entry already naming mailwall stays, so
// planning again after applying gives an empty plan.
// Milters listed in alsoReplace (rspamd's, for one) are replaced too.
func PlanPostfix(st PostfixState, milterAddr, policyAddr string, alsoReplace ...string) PostfixPlan {
	var plan PostfixPlan
	params := map[string]string{}
	for k, v := range st.Main {
		params[k] = v
	}
	for k, v := range st.Overrides {
		params[k] = v
	}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)

	if milterAddr != "" {
		for _, name := range names {
			base := name[strings.LastIndex(name, "/")+1:]
			if base != "smtpd_milters" && base != "non_smtpd_milters" {
				continue
			}
			v, swapped, present := swapMilters(params[name], milterAddr, alsoReplace)
			switch {
			case swapped:
				plan.Changes = append(plan.Changes, PostfixChange{Param: name, Old: params[name], New: v,
					Why: "OpenDKIM's and OpenDMARC's milters (and those given with --replace) give way to mailwall's; other milters keep their place"})
			case !present && name == "smtpd_milters":
				plan.Changes = append(plan.Changes, PostfixChange{Param: name, Old: params[name], New: appendItem(params[name], milterAddr),
					Why: "mail received over SMTP goes through mailwall's milter too, after the others"})
			}
		}
		if _, ok := st.Main["smtpd_milters"]; !ok {
			plan.Changes = append(plan.Changes, PostfixChange{Param: "smtpd_milters", New: milterAddr,
				Why: "mail received over SMTP goes through mailwall's milter"})
		}
		if v := st.Main["milter_default_action"]; v != "tempfail" {
			plan.Changes = append(plan.Changes, PostfixChange{Param: "milter_default_action", Old: v, New: "tempfail",
				Why: MilterTempfailWhy})
		}
	}

	if policyAddr != "" {
		svcs := policydSPFServices(st)
		old := policyAddrs(svcs)
		found := false
		for _, name := range names {
			if !strings.HasSuffix(name, "_restrictions") {
				continue
			}
			v, swapped, present := swapPolicy(params[name], old, policyAddr)
			found = found || swapped || present
			if swapped {
				plan.Changes = append(plan.Changes, PostfixChange{Param: name, Old: params[name], New: v,
					Why: "policyd-spf's check_policy_service becomes mailwall's policy server"})
			}
		}
		if !found {
			// No policyd-spf to replace: add the check where policyd-spf's
			// documentation puts it, after the relay decision.
			cur := st.Main["smtpd_recipient_restrictions"]
			v := appendItem(cur, "check_policy_service "+policyAddr)
			if strings.TrimSpace(cur) == "" {
				v = "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination, " + v
			}
			plan.Changes = append(plan.Changes, PostfixChange{Param: "smtpd_recipient_restrictions", Old: cur, New: v,
				Why: "mailwall's policy server checks SPF once relaying is decided"})
		}
		for _, svc := range svcs {
			plan.Disable = append(plan.Disable, svc)
			name, _, _ := strings.Cut(svc, "/")
			if v, ok := st.Main[name+"_time_limit"]; ok {
				plan.Changes = append(plan.Changes, PostfixChange{Param: name + "_time_limit", Old: v, Remove: true,
					Why: "it was the time limit of the " + svc + " service, which is commented out"})
			}
		}
	}
	return plan
}

// appendItem adds an item to the end of a Postfix list.
func appendItem(list, item string) string {
	if strings.TrimSpace(list) == "" {
		return item
	}
	return list + ", " + item
}

// swapMilters replaces OpenDKIM's and OpenDMARC's entries in a milter list
// with milterAddr, at the first one's place. swapped reports a change;
// present that the result names mailwall.
func swapMilters(list, milterAddr string, alsoReplace []string) (v string, swapped, present bool) {
	var out []string
	for _, e := range postfixList(list) {
		switch {
		case groupAddr(e) == milterAddr:
			if !present {
				out = append(out, e)
			}
			present = true
		case oldMilter(e) || slices.Contains(alsoReplace, groupAddr(e)):
			if !present {
				out = append(out, milterAddr)
				present = true
			}
			swapped = true
		default:
			out = append(out, e)
		}
	}
	if !swapped {
		return list, false, present
	}
	return strings.Join(out, ", "), true, present
}

// swapPolicy replaces "check_policy_service OLD" with mailwall's address in
// a restriction list. swapped reports a change; present reports that the
// list already asks mailwall.
func swapPolicy(list string, old map[string]bool, policyAddr string) (v string, swapped, present bool) {
	items := postfixList(list)
	var out []string
	for i := 0; i < len(items); i++ {
		if items[i] == "check_policy_service" && i+1 < len(items) {
			addr := items[i+1]
			if groupAddr(addr) == policyAddr {
				if present {
					i++
					continue
				}
				present = true
			} else if old[groupAddr(addr)] {
				swapped = true
				if present {
					i++
					continue
				}
				// A group keeps its settings (timeout=...) for the new address.
				addr, present = strings.Replace(addr, groupAddr(addr), policyAddr, 1), true
			}
			out = append(out, items[i]+" "+addr)
			i++
			continue
		}
		out = append(out, items[i])
	}
	if !swapped {
		return list, false, present
	}
	return strings.Join(out, ", "), true, present
}
