/*
 * emc_nn: int8 fully connected layer with per-tensor requantization (arm_fully_connected_s8).
 *
 * out[b][o] = requant(bias[o] + sum_k (x[b][k] + input_offset) * (w[o][k] + filter_offset)).
 * With TFLite's symmetric weights (filter_offset 0) outputs are done in pairs, so each input value is loaded
 * and offset once for two multiply-accumulates (with the DSP extension: four values per load, the offset
 * added by SXTAB16). No scratch memory.
 */
#include <stddef.h>

#include "arm_nnfunctions.h"
#include "emc_nn_dot.h"
#include "emc_nn_math.h"

/* The rare asymmetric-weights case, kept simple. */
static void fully_connected_with_filter_offset(const cmsis_nn_fc_params *fc_params,
                                               const cmsis_nn_per_tensor_quant_params *quant_params,
                                               int32_t batches,
                                               int32_t depth,
                                               int32_t out_c,
                                               const int8_t *input_data,
                                               const int8_t *filter_data,
                                               const int32_t *bias_data,
                                               int8_t *output_data)
{
    for (int32_t b = 0; b < batches; b++)
    {
        const int8_t *x = input_data + b * depth;
        for (int32_t o = 0; o < out_c; o++)
        {
            const int8_t *w = filter_data + o * depth;
            uint32_t acc = bias_data != NULL ? (uint32_t)bias_data[o] : 0u;
            for (int32_t k = 0; k < depth; k++)
            {
                acc += (uint32_t)((x[k] + fc_params->input_offset) * (w[k] + fc_params->filter_offset));
            }
            output_data[b * out_c + o] =
                emc_nn_requantize_to_s8((int32_t)acc, quant_params->multiplier, quant_params->shift,
                                     fc_params->output_offset, fc_params->activation.min, fc_params->activation.max);
        }
    }
}

arm_cmsis_nn_status arm_fully_connected_s8(const cmsis_nn_context *ctx,
                                           const cmsis_nn_fc_params *fc_params,
                                           const cmsis_nn_per_tensor_quant_params *quant_params,
                                           const cmsis_nn_dims *input_dims,
                                           const int8_t *input_data,
                                           const cmsis_nn_dims *filter_dims,
                                           const int8_t *filter_data,
                                           const cmsis_nn_dims *bias_dims,
                                           const int32_t *bias_data,
                                           const cmsis_nn_dims *output_dims,
                                           int8_t *output_data)
{
    (void)ctx;
    (void)bias_dims;
    const int32_t batches = input_dims->n;
    const int32_t depth = filter_dims->n; /* accumulation depth, as CMSIS-NN reads it */
    const int32_t out_c = output_dims->c;
    if (fc_params->filter_offset != 0)
    {
        fully_connected_with_filter_offset(fc_params, quant_params, batches, depth, out_c, input_data, filter_data,
                                           bias_data, output_data);
        return ARM_CMSIS_NN_SUCCESS;
    }
    const int32_t mult = quant_params->multiplier;
    const int32_t shift = quant_params->shift;
    const int32_t output_offset = fc_params->output_offset;
    const int32_t act_min = fc_params->activation.min;
    const int32_t act_max = fc_params->activation.max;
    const int32_t input_offset = fc_params->input_offset;

    for (int32_t o = 0; o < out_c; o += 2)
    {
        /* An odd last output is paired with itself; it is written twice with the same value. */
        const int32_t o1 = o + 1 < out_c ? o + 1 : o;
        const int8_t *w0 = filter_data + o * depth;
        const int8_t *w1 = filter_data + o1 * depth;
        const uint32_t bias0 = bias_data != NULL ? (uint32_t)bias_data[o] : 0u;
        const uint32_t bias1 = bias_data != NULL ? (uint32_t)bias_data[o1] : 0u;
        for (int32_t b = 0; b < batches; b++)
        {
            uint32_t acc0 = bias0;
            uint32_t acc1 = bias1;
            emc_nn_dot_offset_s8_x2w(input_data + b * depth, input_offset, w0, w1, depth, &acc0, &acc1);
            output_data[b * out_c + o1] =
                emc_nn_requantize_to_s8((int32_t)acc1, mult, shift, output_offset, act_min, act_max);
            output_data[b * out_c + o] =
                emc_nn_requantize_to_s8((int32_t)acc0, mult, shift, output_offset, act_min, act_max);
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}

int32_t arm_fully_connected_s8_get_buffer_size(const cmsis_nn_dims *filter_dims)
{
    (void)filter_dims;
    return 0;
}
