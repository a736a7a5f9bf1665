/*
 * emc_nn internal: the dot products under every convolution and fully connected layer.
 *
 * Accumulation is in uint32_t: the same bits as CMSIS-NN's int32 accumulators (which wrap with GCC), but
 * without signed-overflow undefined behaviour; callers convert the sum back to int32_t.
 * Each function does two dot products per pass where one operand is shared, so that operand is loaded
 * once for two multiply-accumulates.
 */
#ifndef EMC_NN_DOT_H
#define EMC_NN_DOT_H

#include <stdint.h>

/* Sum of n int8 values (the weight sums that fold the input offset out of the inner loops). */
static inline int32_t emc_nn_sum_s8(const int8_t *v, int32_t n)
{
    int32_t sum = 0;
    for (int32_t i = 0; i < n; i++)
    {
        sum += v[i];
    }
    return sum;
}

/* acc0 += x . w0, acc1 += x . w1 over n int8 elements (one input row, two weight rows). */
static inline void emc_nn_dot_s8_x2w(const int8_t *x,
                                     const int8_t *w0,
                                     const int8_t *w1,
                                     int32_t n,
                                     uint32_t *acc0,
                                     uint32_t *acc1)
{
    uint32_t s0 = *acc0;
    uint32_t s1 = *acc1;
    for (int32_t i = 0; i < n; i++)
    {
        const int32_t xi = x[i];
        s0 += (uint32_t)(xi * w0[i]);
        s1 += (uint32_t)(xi * w1[i]);
    }
    *acc0 = s0;
    *acc1 = s1;
}

/* acc += x . w over n int8 elements. */
static inline uint32_t emc_nn_dot_s8(const int8_t *x, const int8_t *w, int32_t n, uint32_t acc)
{
    for (int32_t i = 0; i < n; i++)
    {
        acc += (uint32_t)(x[i] * w[i]);
    }
    return acc;
}

/* acc0 += w . c0, acc1 += w . c1: one int8 weight row against two int16 im2col columns. */
static inline void emc_nn_dot_s8_s16_x2c(const int8_t *w,
                                         const int16_t *c0,
                                         const int16_t *c1,
                                         int32_t n,
                                         uint32_t *acc0,
                                         uint32_t *acc1)
{
    uint32_t s0 = *acc0;
    uint32_t s1 = *acc1;
    for (int32_t i = 0; i < n; i++)
    {
        const int32_t wi = w[i];
        s0 += (uint32_t)(wi * c0[i]);
        s1 += (uint32_t)(wi * c1[i]);
    }
    *acc0 = s0;
    *acc1 = s1;
}

/* acc += w . c: one int8 weight row against one int16 im2col column. */
static inline uint32_t emc_nn_dot_s8_s16(const int8_t *w, const int16_t *c, int32_t n, uint32_t acc)
{
    for (int32_t i = 0; i < n; i++)
    {
        acc += (uint32_t)(w[i] * c[i]);
    }
    return acc;
}

#endif /* EMC_NN_DOT_H */
