/*
 * A stand-in for a stripped program with BoringSSL compiled in: functions
 * shaped as clang compiles BoringSSL's ssl_lib.cc (each OPENSSL_PUT_ERROR a
 * load of the file's path, ERR_LIB_SSL, the reason, the line, a call),
 * padded with int3 as lld lays out Chromium. Built with
 * `cc -x assembler-with-cpp` with boringssl_lookalike_main.c (main, whose
 * calls into these functions are never made); -DNEAR_MISS drops SSL_write's
 * BAD_LENGTH check, a near miss of the pattern that must not be hooked.
 */
	.intel_syntax noprefix

	.section .rodata
	/* Large enough to be searched (a search skips files under 1 MiB). */
padding:
	.zero 1100000
file_name:
	.asciz "../../third_party/boringssl/src/ssl/ssl_lib.cc"

	.text
.macro PUT reason
	lea rcx, [rip + file_name]
	mov edi, 16
	xor esi, esi
	mov edx, \reason
	mov r8d, 100
	call ERR_put_error
.endm

.macro FUNCTION name
	.p2align 4, 0xcc
	.globl \name
	.type \name, @function
\name:
.endm

FUNCTION ERR_put_error
	ret

FUNCTION SSL_do_handshake
	cmp qword ptr [rdi], 0
	jne 1f
	PUT 134 /* CONNECTION_TYPE_NOT_SET */
	mov eax, -1
	ret
1:	mov eax, 1
	ret

FUNCTION ssl_read_impl
	push rbx
	cmp qword ptr [rdi], 0
	jne 1f
	PUT 226 /* UNINITIALIZED */
	mov eax, -1
	pop rbx
	ret
1:	call SSL_do_handshake
	test eax, eax
	jg 2f
	PUT 215 /* SSL_HANDSHAKE_FAILURE */
2:	pop rbx
	ret

FUNCTION SSL_peek
	cmp qword ptr [rdi + 8], 0
	je 1f
	PUT 66 /* SHOULD_NOT_HAVE_BEEN_CALLED */
	mov eax, -1
	ret
1:	call ssl_read_impl
	call copy_out
	ret

FUNCTION SSL_read
	cmp qword ptr [rdi + 8], 0
	je 1f
	PUT 66
	mov eax, -1
	ret
1:	call ssl_read_impl
	call copy_out
	call consume
	ret

FUNCTION SSL_write
	cmp qword ptr [rdi + 8], 0
	je 1f
	PUT 66
	mov eax, -1
	ret
1:	cmp qword ptr [rdi], 0
	jne 2f
	PUT 226
	mov eax, -1
	ret
2:	call SSL_do_handshake
	test edx, edx
	jns 3f
#ifndef NEAR_MISS
	PUT 111 /* BAD_LENGTH */
#endif
	mov eax, -1
3:	ret

FUNCTION SSL_new
	test rdi, rdi
	jne 1f
	PUT 185 /* NULL_SSL_CTX */
	xor eax, eax
1:	ret

FUNCTION copy_out
	ret

FUNCTION consume
	ret

	.section .note.GNU-stack, "", @progbits
