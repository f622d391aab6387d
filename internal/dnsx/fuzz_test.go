package dnsx

import "testing"

// FuzzTXTEscapes: EscapeTXT and UnescapeTXT are inverse for any bytes.
func FuzzTXTEscapes(f *testing.F) {
	f.Add("v=spf1 -all")
	f.Add("\"\\\x00\xff\\123")
	f.Fuzz(func(t *testing.T, raw string) {
		if got := UnescapeTXT(EscapeTXT(raw)); got != raw {
			t.Fatalf("round trip of %q gave %q", raw, got)
		}
	})
}
