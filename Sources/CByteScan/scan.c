#include "CByteScan.h"
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

void sa_byte_masks(const uint8_t *p, size_t n, uint8_t a, uint8_t b, uint64_t *mask_a, uint64_t *mask_b) {
    size_t words = (n + 63) / 64;
    size_t whole = n / 64;
#if defined(__SSE2__)
    const __m128i va = _mm_set1_epi8((char)a), vb = _mm_set1_epi8((char)b);
    for (size_t w = 0; w < whole; w++) {
        const uint8_t *q = p + 64 * w;
        uint64_t ma = 0, mb = 0;
        for (int k = 0; k < 4; k++) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(q + 16 * k));
            ma |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, va)) << (16 * k);
            mb |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, vb)) << (16 * k);
        }
        mask_a[w] = ma;
        mask_b[w] = mb;
    }
#else
    for (size_t w = 0; w < whole; w++) {
        const uint8_t *q = p + 64 * w;
        uint64_t ma = 0, mb = 0;
        for (int i = 0; i < 64; i++) {
            ma |= (uint64_t)(q[i] == a) << i;
            mb |= (uint64_t)(q[i] == b) << i;
        }
        mask_a[w] = ma;
        mask_b[w] = mb;
    }
#endif
    if (whole < words) {
        const uint8_t *q = p + 64 * whole;
        size_t rest = n - 64 * whole;
        uint64_t ma = 0, mb = 0;
        for (size_t i = 0; i < rest; i++) {
            ma |= (uint64_t)(q[i] == a) << i;
            mb |= (uint64_t)(q[i] == b) << i;
        }
        mask_a[whole] = ma;
        mask_b[whole] = mb;
    }
}
