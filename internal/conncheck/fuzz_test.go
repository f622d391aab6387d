package conncheck

import (
	"strings"
	"testing"
)

// FuzzRegexpTable: any table text loads or errs with a line number; lookups
// on what loads never panic.
func FuzzRegexpTable(f *testing.F) {
	f.Add(heloTable, "dyn-4.example.net")
	f.Add("if !/a/\n/(b)/ OK $1\nendif\n", "b")
	f.Fuzz(func(t *testing.T, table, key string) {
		tab, err := ParseRegexpTable(strings.NewReader(table), "t")
		if err != nil {
			if !strings.Contains(err.Error(), "line") && !strings.Contains(err.Error(), "token too long") {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		if r, ok := tab.Lookup(key); ok {
			ParseAction(r)
		}
		HeloSyntax(key, true)
	})
}
