//go:build !amd64

package dkim

const wideScan = false

func scanLinesAVX2(p []byte, relaxed bool) int { panic("dkim: no AVX2 here") }
