/*
 * emc_nn: 1x1 int8 convolution without padding (arm_convolve_1x1_s8, arm_convolve_1x1_s8_fast).
 *
 * Every output value is a plain dot product of one input pixel with one filter row, so no im2col is needed.
 * Two output channels x two pixels are computed per pass (emc_nn_dot.h), so every load serves two
 * multiply-accumulates; an odd last channel or pixel is paired with itself (computed and written twice with
 * the same value). No scratch memory.
 */
#include <stddef.h>

#include "arm_nnfunctions.h"
#include "emc_nn_dot.h"
#include "emc_nn_math.h"

static void convolve_1x1(const cmsis_nn_conv_params *conv_params,
                         const cmsis_nn_per_channel_quant_params *quant_params,
                         const cmsis_nn_dims *input_dims,
                         const int8_t *input_data,
                         const int8_t *filter_data,
                         const int32_t *bias_data,
                         const cmsis_nn_dims *output_dims,
                         int8_t *output_data)
{
    const int32_t in_c = input_dims->c;
    const int32_t out_c = output_dims->c;
    const int32_t out_w = output_dims->w;
    const int32_t pixels = output_dims->h * out_w;
    const int32_t stride_x = conv_params->stride.w;
    const int32_t stride_y = conv_params->stride.h;
    const int32_t input_offset = conv_params->input_offset;
    const int32_t output_offset = conv_params->output_offset;
    const int32_t act_min = conv_params->activation.min;
    const int32_t act_max = conv_params->activation.max;
    const int32_t input_row_size = input_dims->w * in_c;

    for (int32_t batch = 0; batch < input_dims->n; batch++)
    {
        const int8_t *in_batch = input_data + batch * input_dims->h * input_row_size;
        int8_t *out_batch = output_data + batch * pixels * out_c;
        for (int32_t oc = 0; oc < out_c; oc += 2)
        {
            const int32_t oc1 = oc + 1 < out_c ? oc + 1 : oc;
            const int8_t *w0 = filter_data + oc * in_c;
            const int8_t *w1 = filter_data + oc1 * in_c;
            const uint32_t bias0 = bias_data != NULL ? (uint32_t)bias_data[oc] : 0u;
            const uint32_t bias1 = bias_data != NULL ? (uint32_t)bias_data[oc1] : 0u;
            const int32_t mult0 = quant_params->multiplier[oc];
            const int32_t shift0 = quant_params->shift[oc];
            const int32_t mult1 = quant_params->multiplier[oc1];
            const int32_t shift1 = quant_params->shift[oc1];
            int32_t y = 0; /* position of the first pixel of the pair */
            int32_t x = 0;
            for (int32_t p = 0; p < pixels; p += 2)
            {
                const int32_t p1 = p + 1 < pixels ? p + 1 : p;
                int32_t y1 = y;
                int32_t x1 = x + 1;
                if (x1 == out_w)
                {
                    x1 = 0;
                    y1++;
                }
                if (p1 == p)
                {
                    y1 = y;
                    x1 = x;
                }
                const int8_t *in0 = in_batch + y * stride_y * input_row_size + x * stride_x * in_c;
                const int8_t *in1 = in_batch + y1 * stride_y * input_row_size + x1 * stride_x * in_c;
                uint32_t acc[4];
                acc[0] = acc[1] = bias0;
                acc[2] = acc[3] = bias1;
                emc_nn_dot_offset_s8_2x2(w0, w1, in0, in1, input_offset, in_c, acc);
                int8_t *out0 = out_batch + p * out_c;
                int8_t *out1 = out_batch + p1 * out_c;
                /* Channel oc1 first: when oc1 == oc the values are equal anyway. */
                out0[oc1] = emc_nn_requantize_to_s8((int32_t)acc[2], mult1, shift1, output_offset, act_min, act_max);
                out1[oc1] = emc_nn_requantize_to_s8((int32_t)acc[3], mult1, shift1, output_offset, act_min, act_max);
                out0[oc] = emc_nn_requantize_to_s8((int32_t)acc[0], mult0, shift0, output_offset, act_min, act_max);
                out1[oc] = emc_nn_requantize_to_s8((int32_t)acc[1], mult0, shift0, output_offset, act_min, act_max);
                y = y1;
                x = x1 + 1;
                if (x == out_w)
                {
                    x = 0;
                    y++;
                }
            }
        }
    }
}

arm_cmsis_nn_status arm_convolve_1x1_s8(const cmsis_nn_context *ctx,
                                        const cmsis_nn_conv_params *conv_params,
                                        const cmsis_nn_per_channel_quant_params *quant_params,
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
    (void)filter_dims;
    (void)bias_dims;
    if (conv_params->padding.w != 0 || conv_params->padding.h != 0)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    convolve_1x1(conv_params, quant_params, input_dims, input_data, filter_data, bias_data, output_dims,
                 output_data);
    return ARM_CMSIS_NN_SUCCESS;
}

arm_cmsis_nn_status arm_convolve_1x1_s8_fast(const cmsis_nn_context *ctx,
                                             const cmsis_nn_conv_params *conv_params,
                                             const cmsis_nn_per_channel_quant_params *quant_params,
                                             const cmsis_nn_dims *input_dims,
                                             const int8_t *input_data,
                                             const cmsis_nn_dims *filter_dims,
                                             const int8_t *filter_data,
                                             const cmsis_nn_dims *bias_dims,
                                             const int32_t *bias_data,
                                             const cmsis_nn_dims *output_dims,
                                             int8_t *output_data)
{
    if (conv_params->stride.w != 1 || conv_params->stride.h != 1)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    return arm_convolve_1x1_s8(ctx,
                               conv_params,
                               quant_params,
                               input_dims,
                               input_data,
                               filter_dims,
                               filter_data,
                               bias_dims,
                               bias_data,
                               output_dims,
                               output_data);
}

int32_t arm_convolve_1x1_s8_fast_get_buffer_size(const cmsis_nn_dims *input_dims)
{
    (void)input_dims;
    return 0;
}
