/*
 * emc_nn internal: the dot products under every convolution and fully connected layer.
 *
 * Two implementations with identical results:
 *  - portable C (any core, e.g. Cortex-M0/M3, hosts): accumulation in uint32_t, the same bits as CMSIS-NN's
 *    int32 accumulators (which wrap with GCC) without signed-overflow undefined behaviour;
 *  - Cortex-M DSP extension (__ARM_FEATURE_DSP: M4, M7, M33, M55, ...): four int8 values per 32-bit load,
 *    widened two at a time with SXTB16 / SXTAB16 (which can add the input offset for free) and multiplied
 *    pairwise with SMLAD. Integer sums are exact modulo 2^32 in both, so the results are bit-identical.
 *    Define EMC_NN_PORTABLE to force the portable code.
 * Each function does two (or four) dot products per pass with operands shared, so that every load serves
 * two multiply-accumulates.
 */
#ifndef EMC_NN_DOT_H
#define EMC_NN_DOT_H

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(EMC_NN_PORTABLE)
#include <arm_acle.h>
#define EMC_NN_DSP 1
#else
#define EMC_NN_DSP 0
#endif

#if EMC_NN_DSP
/* Four int8 (or two int16) values as one 32-bit word; unaligned loads are fine on cores with DSP. */
static inline int32_t emc_nn_load32(const void *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void emc_nn_store32(void *p, int32_t v)
{
    memcpy(p, &v, sizeof v);
}

/* SXTB16 / SXTAB16 of bytes 1 and 3 (the operand rotated right by 8). The instructions rotate for free;
 * GCC does not fold a C rotate into them, hence the inline assembly where it is available. */
#if defined(__GNUC__)
static inline int32_t emc_nn_sxtb16_ror8(int32_t v)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

static inline int32_t emc_nn_sxtab16_ror8(int32_t a, int32_t v)
{
    int32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(v));
    return r;
}
#else
static inline int32_t emc_nn_ror8(int32_t v)
{
    const uint32_t u = (uint32_t)v;
    return (int32_t)((u >> 8) | (u << 24));
}

static inline int32_t emc_nn_sxtb16_ror8(int32_t v)
{
    return __sxtb16(emc_nn_ror8(v));
}

static inline int32_t emc_nn_sxtab16_ror8(int32_t a, int32_t v)
{
    return __sxtab16(a, emc_nn_ror8(v));
}
#endif

/* A 16-bit value in both halves of a word, for SXTAB16. */
static inline int32_t emc_nn_dup16(int32_t v)
{
    return (int32_t)(((uint32_t)v & 0xFFFFu) * 0x10001u);
}
#endif

/* acc0 += (x + x_offset) . w0, acc1 += (x + x_offset) . w1 over n int8 elements (one input row shared by two
 * weight rows). */
static inline void emc_nn_dot_offset_s8_x2w(const int8_t *x,
                                            int32_t x_offset,
                                            const int8_t *w0,
                                            const int8_t *w1,
                                            int32_t n,
                                            uint32_t *acc0,
                                            uint32_t *acc1)
{
    int32_t i = 0;
#if EMC_NN_DSP
    const int32_t offset2 = emc_nn_dup16(x_offset);
    int32_t s0 = (int32_t)*acc0;
    int32_t s1 = (int32_t)*acc1;
    for (; i + 4 <= n; i += 4)
    {
        const int32_t xw = emc_nn_load32(x + i);
        const int32_t x02 = __sxtab16(offset2, xw); /* x[0] + off, x[2] + off */
        const int32_t x13 = emc_nn_sxtab16_ror8(offset2, xw);
        const int32_t a = emc_nn_load32(w0 + i);
        const int32_t b = emc_nn_load32(w1 + i);
        s0 = __smlad(__sxtb16(a), x02, s0);
        s0 = __smlad(emc_nn_sxtb16_ror8(a), x13, s0);
        s1 = __smlad(__sxtb16(b), x02, s1);
        s1 = __smlad(emc_nn_sxtb16_ror8(b), x13, s1);
    }
    *acc0 = (uint32_t)s0;
    *acc1 = (uint32_t)s1;
#endif
    uint32_t t0 = *acc0;
    uint32_t t1 = *acc1;
    for (; i < n; i++)
    {
        const int32_t xi = x[i] + x_offset;
        t0 += (uint32_t)(xi * w0[i]);
        t1 += (uint32_t)(xi * w1[i]);
    }
    *acc0 = t0;
    *acc1 = t1;
}

/* The 2x2 block with the offset on the inputs: acc[0] += w0 . (x0 + off), acc[1] += w0 . (x1 + off),
 * acc[2] += w1 . (x0 + off), acc[3] += w1 . (x1 + off): two weight rows against two input rows. */
static inline void emc_nn_dot_offset_s8_2x2(const int8_t *w0,
                                            const int8_t *w1,
                                            const int8_t *x0,
                                            const int8_t *x1,
                                            int32_t x_offset,
                                            int32_t n,
                                            uint32_t acc[4])
{
    int32_t i = 0;
#if EMC_NN_DSP
    const int32_t offset2 = emc_nn_dup16(x_offset);
    int32_t s00 = (int32_t)acc[0];
    int32_t s01 = (int32_t)acc[1];
    int32_t s10 = (int32_t)acc[2];
    int32_t s11 = (int32_t)acc[3];
    for (; i + 4 <= n; i += 4)
    {
        const int32_t a = emc_nn_load32(w0 + i);
        const int32_t b = emc_nn_load32(w1 + i);
        const int32_t p = emc_nn_load32(x0 + i);
        const int32_t q = emc_nn_load32(x1 + i);
        int32_t wa = __sxtb16(a);
        int32_t wb = __sxtb16(b);
        int32_t x = __sxtab16(offset2, p);
        s00 = __smlad(wa, x, s00);
        s10 = __smlad(wb, x, s10);
        x = __sxtab16(offset2, q);
        s01 = __smlad(wa, x, s01);
        s11 = __smlad(wb, x, s11);
        wa = emc_nn_sxtb16_ror8(a);
        wb = emc_nn_sxtb16_ror8(b);
        x = emc_nn_sxtab16_ror8(offset2, p);
        s00 = __smlad(wa, x, s00);
        s10 = __smlad(wb, x, s10);
        x = emc_nn_sxtab16_ror8(offset2, q);
        s01 = __smlad(wa, x, s01);
        s11 = __smlad(wb, x, s11);
    }
    acc[0] = (uint32_t)s00;
    acc[1] = (uint32_t)s01;
    acc[2] = (uint32_t)s10;
    acc[3] = (uint32_t)s11;
#endif
    uint32_t t00 = acc[0];
    uint32_t t01 = acc[1];
    uint32_t t10 = acc[2];
    uint32_t t11 = acc[3];
    for (; i < n; i++)
    {
        const int32_t a = w0[i];
        const int32_t b = w1[i];
        const int32_t p = x0[i] + x_offset;
        const int32_t q = x1[i] + x_offset;
        t00 += (uint32_t)(a * p);
        t01 += (uint32_t)(a * q);
        t10 += (uint32_t)(b * p);
        t11 += (uint32_t)(b * q);
    }
    acc[0] = t00;
    acc[1] = t01;
    acc[2] = t10;
    acc[3] = t11;
}

/* The im2col columns of the convolution are int16. For the DSP code every complete group of four is stored
 * as elements 0, 2, 1, 3: SXTB16 widens weight bytes 0 and 2 (and, after a rotation, 1 and 3), and each
 * 32-bit column load must hold the matching pair. Elements past the last complete group keep their order. */
static inline void emc_nn_column_to_dot_order(int16_t *col, int32_t n)
{
#if EMC_NN_DSP
    for (int32_t i = 0; i + 4 <= n; i += 4)
    {
        const int16_t second = col[i + 1];
        col[i + 1] = col[i + 2];
        col[i + 2] = second;
    }
#else
    (void)col;
    (void)n;
#endif
}

/* dst[i] = src[i] + offset as int16, for an im2col run of n values that starts on a group of four: with the
 * DSP code the groups come out in dot order directly (SXTAB16 widens bytes 0, 2 and then 1, 3). */
static inline void emc_nn_widen_s8(const int8_t *src, int32_t offset, int16_t *dst, int32_t n)
{
    int32_t i = 0;
#if EMC_NN_DSP
    const int32_t offset2 = emc_nn_dup16(offset);
    for (; i + 4 <= n; i += 4)
    {
        const int32_t v = emc_nn_load32(src + i);
        emc_nn_store32(dst + i, __sxtab16(offset2, v));
        emc_nn_store32(dst + i + 2, emc_nn_sxtab16_ror8(offset2, v));
    }
#endif
    for (; i < n; i++)
    {
        dst[i] = (int16_t)(src[i] + offset);
    }
}

/* acc0 += w . c0, acc1 += w . c1: one int8 weight row against two int16 im2col columns (in the order of
 * emc_nn_column_to_dot_order). */
static inline void emc_nn_dot_s8_s16_x2c(const int8_t *w,
                                         const int16_t *c0,
                                         const int16_t *c1,
                                         int32_t n,
                                         uint32_t *acc0,
                                         uint32_t *acc1)
{
    int32_t i = 0;
#if EMC_NN_DSP
    int32_t s0 = (int32_t)*acc0;
    int32_t s1 = (int32_t)*acc1;
    for (; i + 4 <= n; i += 4)
    {
        const int32_t ww = emc_nn_load32(w + i);
        const int32_t w02 = __sxtb16(ww);
        const int32_t w13 = emc_nn_sxtb16_ror8(ww);
        s0 = __smlad(w02, emc_nn_load32(c0 + i), s0);
        s0 = __smlad(w13, emc_nn_load32(c0 + i + 2), s0);
        s1 = __smlad(w02, emc_nn_load32(c1 + i), s1);
        s1 = __smlad(w13, emc_nn_load32(c1 + i + 2), s1);
    }
    *acc0 = (uint32_t)s0;
    *acc1 = (uint32_t)s1;
#endif
    uint32_t t0 = *acc0;
    uint32_t t1 = *acc1;
    for (; i < n; i++)
    {
        const int32_t wi = w[i];
        t0 += (uint32_t)(wi * c0[i]);
        t1 += (uint32_t)(wi * c1[i]);
    }
    *acc0 = t0;
    *acc1 = t1;
}

/* The 2x2 block: acc[0] += w0 . c0, acc[1] += w0 . c1, acc[2] += w1 . c0, acc[3] += w1 . c1 (two weight rows
 * against two im2col columns): every load serves two multiply-accumulates. */
static inline void emc_nn_dot_s8_s16_2x2(const int8_t *w0,
                                         const int8_t *w1,
                                         const int16_t *c0,
                                         const int16_t *c1,
                                         int32_t n,
                                         uint32_t acc[4])
{
    int32_t i = 0;
#if EMC_NN_DSP
    int32_t s00 = (int32_t)acc[0];
    int32_t s01 = (int32_t)acc[1];
    int32_t s10 = (int32_t)acc[2];
    int32_t s11 = (int32_t)acc[3];
    for (; i + 4 <= n; i += 4)
    {
        const int32_t a = emc_nn_load32(w0 + i);
        const int32_t b = emc_nn_load32(w1 + i);
        const int32_t a02 = __sxtb16(a);
        const int32_t b02 = __sxtb16(b);
        int32_t c = emc_nn_load32(c0 + i);
        s00 = __smlad(a02, c, s00);
        s10 = __smlad(b02, c, s10);
        c = emc_nn_load32(c1 + i);
        s01 = __smlad(a02, c, s01);
        s11 = __smlad(b02, c, s11);
        const int32_t a13 = emc_nn_sxtb16_ror8(a);
        const int32_t b13 = emc_nn_sxtb16_ror8(b);
        c = emc_nn_load32(c0 + i + 2);
        s00 = __smlad(a13, c, s00);
        s10 = __smlad(b13, c, s10);
        c = emc_nn_load32(c1 + i + 2);
        s01 = __smlad(a13, c, s01);
        s11 = __smlad(b13, c, s11);
    }
    acc[0] = (uint32_t)s00;
    acc[1] = (uint32_t)s01;
    acc[2] = (uint32_t)s10;
    acc[3] = (uint32_t)s11;
#endif
    uint32_t t00 = acc[0];
    uint32_t t01 = acc[1];
    uint32_t t10 = acc[2];
    uint32_t t11 = acc[3];
    for (; i < n; i++)
    {
        const int32_t a = w0[i];
        const int32_t b = w1[i];
        t00 += (uint32_t)(a * c0[i]);
        t01 += (uint32_t)(a * c1[i]);
        t10 += (uint32_t)(b * c0[i]);
        t11 += (uint32_t)(b * c1[i]);
    }
    acc[0] = t00;
    acc[1] = t01;
    acc[2] = t10;
    acc[3] = t11;
}

/* acc += w . c: one int8 weight row against one int16 im2col column (same order as above). */
static inline uint32_t emc_nn_dot_s8_s16(const int8_t *w, const int16_t *c, int32_t n, uint32_t acc)
{
    int32_t i = 0;
#if EMC_NN_DSP
    int32_t s = (int32_t)acc;
    for (; i + 4 <= n; i += 4)
    {
        const int32_t ww = emc_nn_load32(w + i);
        s = __smlad(__sxtb16(ww), emc_nn_load32(c + i), s);
        s = __smlad(emc_nn_sxtb16_ror8(ww), emc_nn_load32(c + i + 2), s);
    }
    acc = (uint32_t)s;
#endif
    for (; i < n; i++)
    {
        acc += (uint32_t)(w[i] * c[i]);
    }
    return acc;
}

#endif /* EMC_NN_DOT_H */
