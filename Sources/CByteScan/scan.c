#include "CByteScan.h"
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Bytes q[0..<count] (count <= 64) into the three masks' bits: the tail, and whole words where
   no vector path exists. */
static inline void form_masks_bytes(const uint8_t *q, size_t count, uint64_t *amp, uint64_t *eq, uint64_t *spec) {
    uint64_t ma = 0, me = 0, ms = 0;
    for (size_t i = 0; i < count; i++) {
        ma |= (uint64_t)(q[i] == '&') << i;
        me |= (uint64_t)(q[i] == '=') << i;
        ms |= (uint64_t)(q[i] == '%' || q[i] == '+' || q[i] >= 0x80) << i;
    }
    *amp = ma;
    *eq = me;
    *spec = ms;
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define SA_HAVE_AVX2_PATH 1
#include <immintrin.h>

/* The whole 64-byte words, 32 bytes a step (half the instructions of SSE2's 16), on CPUs that have
   AVX2 (checked at run time: the binary stays baseline x86-64). */
__attribute__((target("avx2")))
static void form_masks_avx2(const uint8_t *p, size_t whole, uint64_t *amps, uint64_t *equals, uint64_t *special) {
    const __m256i va = _mm256_set1_epi8('&'), ve = _mm256_set1_epi8('='), vp = _mm256_set1_epi8('%'), vs = _mm256_set1_epi8('+');
    for (size_t w = 0; w < whole; w++) {
        const uint8_t *q = p + 64 * w;
        __m256i lo = _mm256_loadu_si256((const __m256i *)(const void *)q);
        __m256i hi = _mm256_loadu_si256((const __m256i *)(const void *)(q + 32));
        amps[w] = (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, va))
            | (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, va)) << 32;
        equals[w] = (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, ve))
            | (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, ve)) << 32;
        /* movemask of the byte itself: those of 0x80 and above */
        __m256i slo = _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(lo, vp), _mm256_cmpeq_epi8(lo, vs)), lo);
        __m256i shi = _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(hi, vp), _mm256_cmpeq_epi8(hi, vs)), hi);
        special[w] = (uint64_t)(uint32_t)_mm256_movemask_epi8(slo) | (uint64_t)(uint32_t)_mm256_movemask_epi8(shi) << 32;
    }
}
#endif

void sa_form_masks(const uint8_t *p, size_t n, uint64_t *amps, uint64_t *equals, uint64_t *special) {
    size_t words = (n + 63) / 64;
    size_t whole = n / 64;
#if defined(SA_HAVE_AVX2_PATH)
    if (__builtin_cpu_supports("avx2")) {
        form_masks_avx2(p, whole, amps, equals, special);
        goto tail;
    }
#endif
#if defined(__SSE2__)
    const __m128i va = _mm_set1_epi8('&'), ve = _mm_set1_epi8('='), vp = _mm_set1_epi8('%'), vs = _mm_set1_epi8('+');
    for (size_t w = 0; w < whole; w++) {
        const uint8_t *q = p + 64 * w;
        uint64_t ma = 0, me = 0, ms = 0;
        for (int k = 0; k < 4; k++) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(q + 16 * k));
            ma |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, va)) << (16 * k);
            me |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, ve)) << (16 * k);
            /* movemask of v itself: the bytes of 0x80 and above */
            __m128i s = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, vp), _mm_cmpeq_epi8(v, vs)), v);
            ms |= (uint64_t)(uint16_t)_mm_movemask_epi8(s) << (16 * k);
        }
        amps[w] = ma;
        equals[w] = me;
        special[w] = ms;
    }
#else
    for (size_t w = 0; w < whole; w++) form_masks_bytes(p + 64 * w, 64, &amps[w], &equals[w], &special[w]);
#endif
#if defined(SA_HAVE_AVX2_PATH)
tail:
#endif
    if (whole < words) form_masks_bytes(p + 64 * whole, n - 64 * whole, &amps[whole], &equals[whole], &special[whole]);
}

size_t sa_form_pair_bound(const uint64_t *amps, size_t words) {
    size_t n = 1;
    for (size_t w = 0; w < words; w++) n += (size_t)__builtin_popcountll(amps[w]);
    return n;
}

/* The first set bit at or after from and below limit; -1 if none. */
static inline int64_t next_bit(const uint64_t *m, size_t from, size_t limit) {
    if (from >= limit) return -1;
    size_t w = from >> 6, last = (limit - 1) >> 6;
    uint64_t bits = m[w] & (~(uint64_t)0 << (from & 63));
    while (bits == 0) {
        if (w == last) return -1;
        bits = m[++w];
    }
    size_t at = (w << 6) | (size_t)__builtin_ctzll(bits);
    return at < limit ? (int64_t)at : -1;
}

/* The pair p[start..<end] (its first '=' at eq, -1 if none) into spans, escaped and heads. */
static inline void form_pair(const uint8_t *p, size_t start, size_t end, int64_t eq, const uint64_t *special,
                             const uint64_t *indexed, sa_form_span *spans, size_t *count, int32_t *heads,
                             int32_t *escaped, size_t *esc) {
    if (end <= start) return;
    size_t nameEnd = eq < 0 ? end : (size_t)eq;
    sa_form_span s = { (int32_t)start, (int32_t)nameEnd, eq < 0 ? -1 : (int32_t)(eq + 1), (int32_t)end, -1 };
    if (next_bit(special, start, nameEnd) >= 0) {
        escaped[(*esc)++] = (int32_t)*count;
        spans[(*count)++] = s;
        return;
    }
    size_t len = nameEnd - start;
    size_t b = len == 0 ? 0 : (len * 31 + (size_t)p[start] * 7 + (size_t)p[nameEnd - 1]) & 255;
    if ((indexed[b >> 6] >> (b & 63)) & 1) {
        s.next = heads[b];
        heads[b] = (int32_t)*count;
        spans[(*count)++] = s;
    }
}

/* One sweep over the set bits of amps | equals in order (two a pair, usually): an '&' closes the
   pair, the first '=' after it ends the name. */
size_t sa_form_index(const uint8_t *p, size_t n, const uint64_t *amps, const uint64_t *equals, const uint64_t *special,
                     const uint64_t *indexed, sa_form_span *spans, int32_t *heads, int32_t *escaped, size_t *escapedCount) {
    size_t count = 0, esc = 0, start = 0, words = (n + 63) / 64;
    int64_t eq = -1;
    for (size_t w = 0; w < words; w++) {
        uint64_t a = amps[w], bits = a | equals[w];
        while (bits != 0) {
            unsigned bit = (unsigned)__builtin_ctzll(bits);
            bits &= bits - 1;
            size_t at = (w << 6) | bit;
            if ((a >> bit) & 1) {
                form_pair(p, start, at, eq, special, indexed, spans, &count, heads, escaped, &esc);
                start = at + 1;
                eq = -1;
            } else if (eq < 0) {
                eq = (int64_t)at;
            }
        }
    }
    form_pair(p, start, n, eq, special, indexed, spans, &count, heads, escaped, &esc);
    *escapedCount = esc;
    return count;
}
