#ifndef SWITCHAUTH_CBYTESCAN_H
#define SWITCHAUTH_CBYTESCAN_H
#include <stddef.h>
#include <stdint.h>

/* A form body's separators and escapes in one pass, as bitmaps (bit i of mask[w] is set for
   p[64 * w + i]): where p has '&' (amps), '=' (equals), and '%', '+' or a byte of 0x80 or above
   (special: a name holding none is its own decoding). Each mask has (n + 63) / 64 words, all
   written; bits past n are clear. SSE2 (16 bytes a step) where the target has it, a byte loop
   elsewhere. */
void sa_form_masks(const uint8_t *p, size_t n, uint64_t *amps, uint64_t *equals, uint64_t *special);
#endif
