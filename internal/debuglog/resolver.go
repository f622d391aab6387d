package debuglog

import (
	"context"
	"log/slog"

	"github.com/miekg/dns"

	"mailwall/internal/dnsx"
)

// Resolver logs, for a context with a detail logger, every DNS answer the
// checks use: the name, type, result and records (SPF's lookups, DKIM
// keys, DMARC records, PTRs). Without one it passes the query on and
// logs nothing.
type Resolver struct {
	dnsx.Resolver
}

// Wrap returns r logging for debug peers; r already wrapped (or nil) is
// returned as it is.
func Wrap(r dnsx.Resolver) dnsx.Resolver {
	if r == nil {
		return nil
	}
	if _, ok := r.(Resolver); ok {
		return r
	}
	return Resolver{r}
}

// maxRecords bounds the records one detail line lists.
const maxRecords = 16

// Query answers as the wrapped resolver does.
func (r Resolver) Query(ctx context.Context, name string, qtype uint16) (*dnsx.Answer, error) {
	a, err := r.Resolver.Query(ctx, name, qtype)
	if l := From(ctx); l != nil {
		logAnswer(ctx, l, name, qtype, a, err)
	}
	return a, err
}

func logAnswer(ctx context.Context, l *slog.Logger, name string, qtype uint16, a *dnsx.Answer, err error) {
	attrs := []slog.Attr{slog.String("name", Clip(name, 256)), slog.String("type", dns.TypeToString[qtype])}
	switch {
	case err != nil:
		attrs = append(attrs, slog.String("error", Clip(err.Error(), MaxValue)))
	case a == nil:
		attrs = append(attrs, slog.String("rcode", "none"))
	default:
		attrs = append(attrs, slog.String("rcode", dns.RcodeToString[a.Rcode]), slog.Uint64("ttl", uint64(a.TTL)))
		if a.Security != dnsx.Unvalidated { // dns.dnssec on: the answer's DNSSEC status
			attrs = append(attrs, slog.String("dnssec", a.Security.String()))
			if a.SecurityReason != "" {
				attrs = append(attrs, slog.String("dnssec_reason", Clip(a.SecurityReason, MaxValue)))
			}
		}
		recs := make([]string, 0, min(len(a.Records), maxRecords))
		for i, rr := range a.Records {
			if i == maxRecords {
				recs = append(recs, "...("+itoa(len(a.Records)-maxRecords)+" more records)")
				break
			}
			recs = append(recs, Clip(rdata(rr), MaxValue))
		}
		attrs = append(attrs, slog.Any("records", recs))
	}
	l.LogAttrs(ctx, slog.LevelInfo, "debug: dns", attrs...)
}

// rdata is a record's data as a zone file shows it; a TXT record's
// strings joined, as the checks read them.
func rdata(rr dns.RR) string {
	if t, ok := rr.(*dns.TXT); ok {
		n := 0
		for _, s := range t.Txt {
			n += len(s)
		}
		b := make([]byte, 0, min(n, MaxValue+1))
		for _, s := range t.Txt {
			b = append(b, s...)
			if len(b) > MaxValue {
				break
			}
		}
		return string(b)
	}
	hdr := rr.Header().String()
	return rr.String()[len(hdr):]
}
