/*
 * emc_nn: int8 softmax (arm_softmax_s8), TFLite's quantized softmax in gemmlowp fixed point.
 *
 * Per row: d = x - max(row) <= 0 is scaled to Q5.26 by mult/shift; exp(d) is evaluated in fixed point
 * (emc_nn_exp_on_negative_values); the exps, each divided by 2^12, are summed in Q12.19; the sum is
 * normalised to [1, 2) and inverted with Newton-Raphson; each output is exp * (1 / sum) scaled to 1/256
 * units, minus 128. Differences below diff_min count as exp = 0 and give -128.
 * The exps are computed twice (sum pass and output pass), as in CMSIS-NN: no scratch is available.
 */
#include "arm_nnfunctions.h"
#include "emc_nn_math.h"

#define ACCUMULATION_INTEGER_BITS 12 /* Q12.19 sum of exps: no overflow for rows of fewer than 4096 values */

/* exp(diff) in Q0.31 for diff = x - max, scaled to Q5.26 by multiplier and shift. */
static int32_t exp_of_difference(int32_t diff, int32_t mult, int32_t shift)
{
    const int32_t scaled = emc_nn_mul_high_sat(emc_nn_shl(diff, shift), mult);
    return emc_nn_exp_on_negative_values(scaled);
}

void arm_softmax_s8(const int8_t *input,
                    const int32_t num_rows,
                    const int32_t row_size,
                    const int32_t mult,
                    const int32_t shift,
                    const int32_t diff_min,
                    int8_t *output)
{
    for (int32_t row = 0; row < num_rows; row++)
    {
        const int8_t *in = input + row * row_size;
        int8_t *out = output + row * row_size;
        if (row_size <= 0)
        {
            return;
        }
        int32_t max = in[0];
        for (int32_t i = 1; i < row_size; i++)
        {
            max = EMC_NN_MAX(max, in[i]);
        }

        int32_t sum = 0;
        for (int32_t i = 0; i < row_size; i++)
        {
            const int32_t diff = in[i] - max;
            if (diff >= diff_min)
            {
                sum += emc_nn_div_pow2(exp_of_difference(diff, mult, shift), ACCUMULATION_INTEGER_BITS);
            }
        }

        /* sum >= 1 in Q12.19 (the maximum contributes exp(0)); write it as 2^(12 - headroom) * (1 + frac). */
        const int32_t headroom = emc_nn_clz((uint32_t)sum);
        const int32_t frac = (int32_t)(((uint32_t)sum << headroom) - 0x80000000u); /* Q0.31, in [0, 1) */
        const int32_t reciprocal = emc_nn_one_over_one_plus_x(frac);                /* 1 / (1 + frac) */
        /* exp * reciprocal is exp / sum * 2^(12 - headroom) in Q0.31; output units are 1/256 = 2^-8. */
        const int32_t bits_over_unit = ACCUMULATION_INTEGER_BITS - headroom + 31 - 8;

        for (int32_t i = 0; i < row_size; i++)
        {
            const int32_t diff = in[i] - max;
            if (diff >= diff_min)
            {
                const int32_t scaled = emc_nn_mul_high_sat(reciprocal, exp_of_difference(diff, mult, shift));
                /* A sum of exps >= 2^28 (512 or more values close to the row maximum) asks for a division
                 * by 2^32 or more, which TFLite rejects and CMSIS-NN computes with an undefined shift. The
                 * exact quotient of |scaled| < 2^31 by such a power of two rounds to 0. */
                const int32_t units = bits_over_unit > 31 ? 0 : emc_nn_div_pow2(scaled, bits_over_unit);
                const int32_t value = units - 128;
                out[i] = emc_nn_clamp_s8(value, -128, 127);
            }
            else
            {
                out[i] = -128;
            }
        }
    }
}
