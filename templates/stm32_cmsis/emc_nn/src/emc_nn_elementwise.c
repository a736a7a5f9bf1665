/*
 * emc_nn: int8 elementwise add and multiply of two equal-shape tensors (arm_elementwise_add_s8,
 * arm_elementwise_mul_s8), TFLite's quantized ADD and MUL without broadcasting.
 */
#include "arm_nnfunctions.h"
#include "emc_nn_math.h"

arm_cmsis_nn_status arm_elementwise_add_s8(const int8_t *input_1_vect,
                                           const int8_t *input_2_vect,
                                           const int32_t input_1_offset,
                                           const int32_t input_1_mult,
                                           const int32_t input_1_shift,
                                           const int32_t input_2_offset,
                                           const int32_t input_2_mult,
                                           const int32_t input_2_shift,
                                           const int32_t left_shift,
                                           int8_t *output,
                                           const int32_t out_offset,
                                           const int32_t out_mult,
                                           const int32_t out_shift,
                                           const int32_t out_activation_min,
                                           const int32_t out_activation_max,
                                           const int32_t block_size)
{
    for (int32_t i = 0; i < block_size; i++)
    {
        /* Both inputs are brought to a common scale with 20 bits of headroom (TFLite's left_shift),
         * added, and the sum is requantized to the output scale. */
        const int32_t a = emc_nn_requantize(emc_nn_shl(input_1_vect[i] + input_1_offset, left_shift),
                                            input_1_mult, input_1_shift);
        const int32_t b = emc_nn_requantize(emc_nn_shl(input_2_vect[i] + input_2_offset, left_shift),
                                            input_2_mult, input_2_shift);
        const int32_t sum = (int32_t)((uint32_t)a + (uint32_t)b);
        output[i] = emc_nn_requantize_to_s8(sum, out_mult, out_shift, out_offset, out_activation_min,
                                         out_activation_max);
    }
    return ARM_CMSIS_NN_SUCCESS;
}

arm_cmsis_nn_status arm_elementwise_mul_s8(const int8_t *input_1_vect,
                                           const int8_t *input_2_vect,
                                           const int32_t input_1_offset,
                                           const int32_t input_2_offset,
                                           int8_t *output,
                                           const int32_t out_offset,
                                           const int32_t out_mult,
                                           const int32_t out_shift,
                                           const int32_t out_activation_min,
                                           const int32_t out_activation_max,
                                           const int32_t block_size)
{
    for (int32_t i = 0; i < block_size; i++)
    {
        const int32_t product = (input_1_vect[i] + input_1_offset) * (input_2_vect[i] + input_2_offset);
        output[i] = emc_nn_requantize_to_s8(product, out_mult, out_shift, out_offset, out_activation_min,
                                         out_activation_max);
    }
    return ARM_CMSIS_NN_SUCCESS;
}
