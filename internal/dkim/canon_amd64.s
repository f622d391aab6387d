#include "textflag.h"

// func scanLinesAVX2(p []byte, relaxed bool) (end int)
//
// 32 octets a step, each compared with the octet after it (a second,
// unaligned load one octet further on), so every step needs 33 octets.
// A step with nothing to stop for advances end past its last LF; the
// first step with something stops the scan, and the word-at-a-time code
// goes on from end, the start of that line.
TEXT ·scanLinesAVX2(SB), NOSPLIT, $0-40
	MOVQ p_base+0(FP), SI
	MOVQ p_len+8(FP), CX
	MOVBLZX relaxed+24(FP), DX
	XORQ AX, AX // i
	XORQ R8, R8 // end

	MOVQ $0x0d0d0d0d0d0d0d0d, R9
	MOVQ R9, X11
	VPBROADCASTQ X11, Y11 // CR
	MOVQ $0x0a0a0a0a0a0a0a0a, R9
	MOVQ R9, X12
	VPBROADCASTQ X12, Y12 // LF
	MOVQ $0x2020202020202020, R9
	MOVQ R9, X13
	VPBROADCASTQ X13, Y13 // SP
	MOVQ $0x0909090909090909, R9
	MOVQ R9, X14
	VPBROADCASTQ X14, Y14 // HTAB

loop:
	LEAQ 33(AX), R10
	CMPQ R10, CX
	JA   done
	VMOVDQU (SI)(AX*1), Y0  // x: the octets
	VMOVDQU 1(SI)(AX*1), Y2 // y: the octet after each
	VPCMPEQB Y0, Y11, Y3    // x is CR
	VPCMPEQB Y2, Y12, Y4    // y is LF
	VPCMPEQB Y0, Y12, Y5    // x is LF
	VPCMPEQB Y2, Y11, Y6    // y is CR
	VPXOR    Y3, Y4, Y7     // a CR without its LF, or an LF without its CR
	VPAND    Y5, Y6, Y8     // an empty line follows
	VPOR     Y8, Y7, Y7
	TESTB    DL, DL
	JZ       check
	VPCMPEQB Y0, Y14, Y8    // x is HTAB
	VPOR     Y8, Y7, Y7
	VPCMPEQB Y2, Y13, Y8    // y is SP
	VPCMPEQB Y2, Y14, Y9    // y is HTAB
	VPOR     Y9, Y8, Y8
	VPOR     Y4, Y8, Y8
	VPOR     Y6, Y8, Y8     // y is white space or a line end
	VPCMPEQB Y0, Y13, Y9    // x is SP
	VPAND    Y9, Y8, Y8
	VPOR     Y8, Y7, Y7

check:
	VPTEST    Y7, Y7
	JNZ       done
	VPMOVMSKB Y5, R11
	TESTL     R11, R11
	JZ        next
	BSRL      R11, R11
	LEAQ      1(AX)(R11*1), R8 // past the step's last LF
next:
	ADDQ $32, AX
	JMP  loop

done:
	VZEROUPPER
	MOVQ R8, end+32(FP)
	RET
