package policyd

import (
	"net/netip"
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

// debugFinal logs the answer Postfix gets (after greylisting and the
// lists) for a debug peer's request.
func (s *Server) debugFinal(req Request, resp Response) {
	if !s.Debug.Active() {
		return
	}
	ip, err := netip.ParseAddr(req["client_address"])
	if err != nil {
		return
	}
	if dl := s.Debug.Logger(ip); dl != nil {
		dl.Info("debug: policy answer", "line", debuglog.Clip(resp.Line(), debuglog.MaxValue))
	}
}
