#ifndef SWITCHAUTH_CBYTESCAN_H
#define SWITCHAUTH_CBYTESCAN_H
#include <stddef.h>
#include <stdint.h>

/* Where the bytes a and b occur in p[0..<n], as bitmaps: bit i of mask_a[w] is set when
   p[64 * w + i] == a (likewise b). Each mask has (n + 63) / 64 words, all written; bits past n are
   clear. SSE2 (16 bytes a step) where the target has it, a byte loop elsewhere. */
void sa_byte_masks(const uint8_t *p, size_t n, uint8_t a, uint8_t b, uint64_t *mask_a, uint64_t *mask_b);
#endif
