package dkim

import "golang.org/x/sys/cpu"

// wideScan: scanLinesAVX2 may run. It checks 32 octets in the time the
// word-at-a-time code takes for eight, which for a large body saves
// about as much as SHA-256 costs.
var wideScan = cpu.X86.HasAVX2

// scanLinesAVX2 returns the length of a prefix of p made of whole lines
// that canonicalize to themselves, as selfCanonical defines them; p
// starts a line and its first octet is neither CR nor LF. It may stop
// short of the longest such prefix (at most a line and 33 octets), never
// past it.
//
//go:noescape
func scanLinesAVX2(p []byte, relaxed bool) (end int)
