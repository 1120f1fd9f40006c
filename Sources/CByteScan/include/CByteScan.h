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

/* A pair of a form body: its name p[nameStart..<nameEnd], its value p[valueStart..<valueEnd]
   (valueStart -1: no '='), and the next span of its bucket's chain (-1: none). */
typedef struct {
    int32_t nameStart, nameEnd, valueStart, valueEnd, next;
} sa_form_span;

/* How many pairs a body of these masks can have at most (its '&' plus one): the capacity
   sa_form_index needs for spans and for escaped. */
size_t sa_form_pair_bound(const uint64_t *amps, size_t words);

/* The pairs of p[0..<n] (n < 2^31) read off its masks (sa_form_masks): pairs split on '&', empty
   ones skipped, a name ending at its first '='. A name holding a special byte is kept in spans
   and its index added to escaped; a plain name is kept only if its bucket ((length * 31 +
   first * 7 + last) & 255, 0 when empty) is set in indexed (4 words, bit b of word b / 64), and
   chained from heads[bucket] (256 entries, -1 for an empty chain: the caller's initial value).
   Returns the spans written; *escapedCount is set to the escaped written. */
size_t sa_form_index(const uint8_t *p, size_t n, const uint64_t *amps, const uint64_t *equals, const uint64_t *special,
                     const uint64_t *indexed, sa_form_span *spans, int32_t *heads, int32_t *escaped, size_t *escapedCount);
#endif
