/*
 * emc_nn internal: the fixed-point arithmetic that CMSIS-NN and TFLite's int8 kernels share
 * (gemmlowp semantics). Everything is static inline so that emc_nn_extra.c can use it while the
 * program links against the real CMSIS-NN: no symbol of this header can clash with a library.
 *
 * Undefined behaviour is avoided on purpose (shifts go through uint32_t), but the results are those of
 * GCC's two's-complement wrap-around where CMSIS-NN relies on it. Two implementation-defined behaviours
 * are assumed, as every Arm and x86 compiler provides them: >> of a negative value is an arithmetic shift,
 * and converting an out-of-range unsigned value to a signed type wraps modulo 2^N.
 */
#ifndef EMC_NN_MATH_H
#define EMC_NN_MATH_H

#include <stdint.h>

#define EMC_NN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define EMC_NN_MAX(a, b) ((a) > (b) ? (a) : (b))

/* v << s with two's-complement wrap-around, s in [0, 31]. */
static inline int32_t emc_nn_shl(int32_t v, int32_t s)
{
    return (int32_t)((uint32_t)v << s);
}

/* Rounding doubling high multiply without saturation, as used by requantization:
 * (a * b + 2^30) >> 31, i.e. round(a * b / 2^31) with halves rounded up. */
static inline int32_t emc_nn_mul_high(int32_t a, int32_t b)
{
    const int64_t product = (int64_t)a * b + ((int64_t)1 << 30);
    return (int32_t)(product >> 31);
}

/* Saturating rounding doubling high multiply (gemmlowp SaturatingRoundingDoublingHighMul, Arm VQRDMULH):
 * the product is rounded to nearest with halves away from zero; only INT32_MIN * INT32_MIN saturates. */
static inline int32_t emc_nn_mul_high_sat(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN)
    {
        return INT32_MAX;
    }
    const int64_t product = (int64_t)a * b;
    const int64_t nudge = product >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    /* Division, not a shift: it truncates towards zero, which together with the nudge rounds as gemmlowp. */
    return (int32_t)((product + nudge) / ((int64_t)1 << 31));
}

/* x / 2^exponent rounded to nearest, halves away from zero; exponent in [0, 31]. */
static inline int32_t emc_nn_div_pow2(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((uint32_t)1 << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t floor_q = x >> exponent;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return floor_q + (remainder > threshold ? 1 : 0);
}

/* Requantize an int32 accumulator with a Q31 multiplier and a shift (> 0 left, < 0 right): the default
 * (double rounding) arm_nn_requantize / TFLite MultiplyByQuantizedMultiplier. The left shift wraps like
 * CMSIS-NN's val * (1 << shift). */
static inline int32_t emc_nn_requantize(int32_t acc, int32_t multiplier, int32_t shift)
{
    /* Branch-free on purpose: one of the two shifts is 0 (a division by 2^0 is exact), and compilers keep a
     * single multiply instead of computing both branches. */
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    return emc_nn_div_pow2(emc_nn_mul_high(emc_nn_shl(acc, left), multiplier), right);
}

/* Clamp to [lo, hi] and narrow to int8 (lo, hi within int8). */
static inline int8_t emc_nn_clamp_s8(int32_t v, int32_t lo, int32_t hi)
{
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    return (int8_t)v;
}

/* The last step of every layer: requantize, add the output offset (wrapping like CMSIS-NN's int32 add),
 * clamp to the activation range. */
static inline int8_t emc_nn_requantize_to_s8(int32_t acc, int32_t multiplier, int32_t shift, int32_t output_offset,
                                          int32_t act_min, int32_t act_max)
{
    const uint32_t shifted = (uint32_t)emc_nn_requantize(acc, multiplier, shift) + (uint32_t)output_offset;
    return emc_nn_clamp_s8((int32_t)shifted, act_min, act_max);
}

/* v * 2^exponent saturated to int32 (gemmlowp SaturatingRoundingMultiplyByPOT, exponent in [1, 31]).
 * The saturation thresholds are gemmlowp's: |v| > 2^(31 - exponent) - 1 saturates. */
static inline int32_t emc_nn_mul_pow2_sat(int32_t v, int32_t exponent)
{
    const int32_t threshold = (int32_t)(((uint32_t)1 << (31 - exponent)) - 1u);
    if (v > threshold)
    {
        return INT32_MAX;
    }
    if (v < -threshold)
    {
        return INT32_MIN;
    }
    return emc_nn_shl(v, exponent);
}

/* Number of leading zero bits of a 32-bit value (32 for 0). */
static inline int32_t emc_nn_clz(uint32_t v)
{
#if defined(__GNUC__) || defined(__clang__)
    return v == 0u ? 32 : (int32_t)__builtin_clz(v);
#else
    int32_t n = 0;
    while (n < 32 && (v & 0x80000000u) == 0u)
    {
        v <<= 1;
        n++;
    }
    return n;
#endif
}

/* exp(a) for a in [-1/4, 0), a and the result in Q0.31: Taylor series of degree 4 around -1/8,
 * exp(-1/8) * (1 + x + x^2/2 + x^3/6 + x^4/24) with x = a + 1/8 (gemmlowp's evaluation order). */
static inline int32_t emc_nn_exp_on_quarter_interval(int32_t a)
{
    const int32_t exp_minus_one_eighth = 1895147668; /* round(exp(-1/8) * 2^31) */
    const int32_t one_third = 715827883;             /* round(2^31 / 3) */
    const int32_t x = a + (1 << 28);                 /* + 1/8 */
    const int32_t x2 = emc_nn_mul_high_sat(x, x);
    const int32_t x3 = emc_nn_mul_high_sat(x2, x);
    const int32_t x4 = emc_nn_mul_high_sat(x2, x2);
    const int32_t x4_over_4 = emc_nn_div_pow2(x4, 2);
    /* ((x^4/4 + x^3) / 3 + x^2) / 2 = x^4/24 + x^3/6 + x^2/2 */
    const int32_t higher_terms = emc_nn_div_pow2(emc_nn_mul_high_sat(x4_over_4 + x3, one_third) + x2, 1);
    return exp_minus_one_eighth + emc_nn_mul_high_sat(exp_minus_one_eighth, x + higher_terms);
}

/* exp(v) for v <= 0 given in Q5.26 (5 integer bits), result in Q0.31. The argument is split into
 * v = r - k/4 with r in [-1/4, 0): exp(r) from the series, then one factor exp(-2^j) per set bit of k/4. */
static inline int32_t emc_nn_exp_on_negative_values(int32_t v)
{
    /* round(exp(-2^j) * 2^31) for j = -2 .. 4, i.e. the bits 24 .. 30 of a Q5.26 value. */
    static const int32_t exp_of_minus_pow2[7] = {1672461947, 1302514674, 790015084, 290630308,
                                                 39332535,   720401,     242};
    const int32_t one_quarter = 1 << 24;
    const int32_t r = (v & (one_quarter - 1)) - one_quarter;
    const int32_t remainder = r - v; /* >= 0, a multiple of 1/4 */
    int32_t result = emc_nn_exp_on_quarter_interval(emc_nn_shl(r, 5)); /* Q5.26 -> Q0.31 */
    for (int32_t j = 0; j < 7; j++)
    {
        if ((remainder & (1 << (24 + j))) != 0)
        {
            result = emc_nn_mul_high_sat(result, exp_of_minus_pow2[j]);
        }
    }
    return v == 0 ? INT32_MAX : result;
}

/* 1 / (1 + x) for x in [0, 1), x and the result in Q0.31: three Newton-Raphson steps for the reciprocal of
 * d = (1 + x) / 2 in Q2.29, starting from 48/17 - 32/17 * d (gemmlowp one_over_one_plus_x_for_x_in_0_1). */
static inline int32_t emc_nn_one_over_one_plus_x(int32_t x)
{
    const int64_t sum = (int64_t)x + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2); /* rounding half sum */
    const int32_t forty_eight_over_17 = 1515870810;                              /* round(48/17 * 2^29) */
    const int32_t minus_thirty_two_over_17 = -1010580540;                        /* round(-32/17 * 2^29) */
    const int32_t one_q2_29 = 1 << 29;
    int32_t r = forty_eight_over_17 + emc_nn_mul_high_sat(half_denominator, minus_thirty_two_over_17);
    for (int32_t step = 0; step < 3; step++)
    {
        const int32_t error = one_q2_29 - emc_nn_mul_high_sat(half_denominator, r);
        r += emc_nn_mul_pow2_sat(emc_nn_mul_high_sat(r, error), 2);
    }
    /* r ~ 1/d = 2/(1+x) in Q2.29; 1/(1+x) in Q0.31 is r * 2^2 / 2. */
    return emc_nn_mul_pow2_sat(r, 1);
}

#endif /* EMC_NN_MATH_H */
