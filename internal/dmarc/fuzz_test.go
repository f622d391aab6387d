package dmarc

import "testing"

// FuzzParseRecord: records never panic and what parses keeps its defaults
// sane.
func FuzzParseRecord(f *testing.F) {
	f.Add("v=DMARC1; p=reject; sp=none; np=quarantine; rua=mailto:a@b.example!10m; pct=50; t=y; psd=u")
	f.Add("v=DMARC1;;;=;p")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRecord(s)
		if err != nil {
			return
		}
		if r.P == "" || (r.ADKIM != 'r' && r.ADKIM != 's') || (r.PSD != 'y' && r.PSD != 'n' && r.PSD != 'u') || r.Pct > 100 {
			t.Fatalf("record %+v", r)
		}
		for _, u := range r.RUA {
			if u.Host() == "" {
				t.Fatalf("rua without a host accepted: %+v", u)
			}
		}
	})
}
