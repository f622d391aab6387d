package labdns

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseZoneFile: a broken zone file is an error, never a panic.
func FuzzParseZoneFile(f *testing.F) {
	f.Add(testZone)
	f.Add("$ORIGIN example.test.\n@ IN SOA ns1 h 1 2 3 4 5\n* IN TXT \"x\"\n")
	f.Add("@ IN SOA ns1 h (1 2\n")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, text string) {
		p := filepath.Join(dir, "example.test.zone")
		os.WriteFile(p, []byte(text), 0o644)
		z, err := ParseZoneFile(p, "")
		if err == nil && z.SOA == nil {
			t.Fatal("zone without SOA accepted")
		}
	})
}
