package milter

import (
	"bufio"
	"bytes"
	"log/slog"
	"testing"
)

// FuzzSession feeds arbitrary packets to a session: errors end it, nothing
// panics, and the macros kept stay counted and within MaxMacroBytes.
func FuzzSession(f *testing.F) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	writePacket(w, cmdOptNeg, u32(6), u32(0x1ff), u32(0x1fffff))
	writePacket(w, cmdMacro, []byte{'C'}, cstr("j", "mx"))
	writePacket(w, cmdConnect, cstr("host"), []byte{'4', 0, 25}, cstr("192.0.2.1"))
	writePacket(w, cmdHeader, cstr("From", " a@b"))
	writePacket(w, cmdEOB)
	w.Flush()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		rec, _ := newRecorder()
		s := &Server{NewFilter: func() Filter { return rec }, Actions: 0xff, Log: slog.New(slog.DiscardHandler)}
		var out bytes.Buffer
		ss := &session{s: s, r: newPacketReader(bytes.NewReader(in)), w: bufio.NewWriter(&out)}
		for range 1000 {
			p, err := ss.r.read()
			if err != nil {
				return
			}
			quit, err := ss.handle(p)
			kept := 0
			for _, st := range ss.macros.stages {
				for _, kv := range st {
					kept += len(kv.name) + len(kv.value)
				}
			}
			if kept != ss.macros.size || kept > MaxMacroBytes {
				t.Fatalf("macros: %d octets kept, %d counted, limit %d", kept, ss.macros.size, MaxMacroBytes)
			}
			if quit || err != nil {
				return
			}
		}
	})
}
