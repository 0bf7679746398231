/* Referral codes: the alphabet, generation from random bytes, and normalisation of user input.
 * Pure: the caller supplies the randomness (libsodium's CSPRNG in production). */
#ifndef TALLY_DOMAIN_CODE_H
#define TALLY_DOMAIN_CODE_H

#include <stddef.h>
#include <stdint.h>

/* 32 symbols without the look-alikes 0 O 1 I l; 32 is a power of two so a byte's low five
 * bits pick a symbol without modulo bias. */
#define CODE_ALPHABET "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
#define CODE_ALPHABET_LEN 32

/* Write len symbols chosen by rnd[0..len) plus NUL into out[len + 1]. len within the limits. */
void code_from_random(const uint8_t *rnd, int len, char *out);

/* Trim, upper-case and check user input as a code: 0 with the canonical code in out[cap],
 * or -1 when it cannot be a code (wrong length or a symbol outside the alphabet). */
int code_normalize(const char *in, char *out, size_t cap);

#endif
