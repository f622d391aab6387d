package policyd

import (
	"slices"

	"mailwall/internal/debuglog"
)

// debugRequest is a request's attributes as "name=value", sorted, each
// clipped: the policy request a debug peer's log shows.
func debugRequest(req Request) []string {
	out := make([]string, 0, len(req))
	for k, v := range req {
		if v == "" {
			continue
		}
		out = append(out, debuglog.Clip(k+"="+v, debuglog.MaxValue))
	}
	slices.Sort(out)
	return out
}
