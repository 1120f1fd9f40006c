#include "CByteScan.h"
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

void sa_form_masks(const uint8_t *p, size_t n, uint64_t *amps, uint64_t *equals, uint64_t *special) {
    size_t words = (n + 63) / 64;
    size_t whole = n / 64;
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
    for (size_t w = 0; w < whole; w++) {
        const uint8_t *q = p + 64 * w;
        uint64_t ma = 0, me = 0, ms = 0;
        for (int i = 0; i < 64; i++) {
            ma |= (uint64_t)(q[i] == '&') << i;
            me |= (uint64_t)(q[i] == '=') << i;
            ms |= (uint64_t)(q[i] == '%' || q[i] == '+' || q[i] >= 0x80) << i;
        }
        amps[w] = ma;
        equals[w] = me;
        special[w] = ms;
    }
#endif
    if (whole < words) {
        const uint8_t *q = p + 64 * whole;
        size_t rest = n - 64 * whole;
        uint64_t ma = 0, me = 0, ms = 0;
        for (size_t i = 0; i < rest; i++) {
            ma |= (uint64_t)(q[i] == '&') << i;
            me |= (uint64_t)(q[i] == '=') << i;
            ms |= (uint64_t)(q[i] == '%' || q[i] == '+' || q[i] >= 0x80) << i;
        }
        amps[whole] = ma;
        equals[whole] = me;
        special[whole] = ms;
    }
}
