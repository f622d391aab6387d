package classify

import (
	"maps"
	"mime"
	"testing"
)

// parseMediaTypeAgrees fails t when parseMediaType and
// mime.ParseMediaType differ on v (a nil map is the empty one).
func parseMediaTypeAgrees(t *testing.T, v string) {
	t.Helper()
	got, gotParams, err := parseMediaType(v)
	want, wantParams, werr := mime.ParseMediaType(v)
	if got != want || (err == nil) != (werr == nil) || !maps.Equal(gotParams, wantParams) {
		t.Errorf("parseMediaType(%q) = %q %v %v, mime.ParseMediaType's %q %v %v", v, got, gotParams, err, want, wantParams, werr)
	}
}

// TestParseMediaType: parseMediaType answers as mime.ParseMediaType
// does, on the values it reads itself and on their near misses.
func TestParseMediaType(t *testing.T) {
	for _, v := range []string{
		"", "text/plain", "Text/HTML", "multipart/alternative; boundary=zz", "attachment", "inline", "application/vnd.ms-excel",
		"image/svg+xml", "text/", "/plain", "/", "text//plain", "text/plain/x", "text/plain;", " text/plain", "text/plain ",
		"text /plain", "text/plain; charset=utf-8", "attachment; filename=\"inv.pdf\"", "x_y/z", "téxt/plain", "text/pl@in",
		"a/b=c", "a/b?", "message/rfc822", "application/octet-stream",
	} {
		parseMediaTypeAgrees(t, v)
	}
	for _, v := range []string{"", "text/plain", "attachment"} {
		if n := testing.AllocsPerRun(10, func() { parseMediaType(v) }); n != 0 {
			t.Errorf("parseMediaType(%q): %v allocations, not read by parseMediaType itself", v, n)
		}
	}
}

// FuzzParseMediaType: parseMediaType answers as mime.ParseMediaType
// does.
func FuzzParseMediaType(f *testing.F) {
	f.Add("text/plain")
	f.Add("Multipart/Mixed; boundary=b")
	f.Fuzz(parseMediaTypeAgrees)
}
