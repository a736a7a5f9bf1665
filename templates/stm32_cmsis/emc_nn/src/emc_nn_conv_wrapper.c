/*
 * emc_nn: arm_convolve_wrapper_s8, the convolution entry point generated code calls.
 *
 * A 1x1 kernel without padding or dilation over all input channels goes to the scratch-free 1x1 kernel
 * (CMSIS-NN needs no scratch there either); everything else goes to the general im2col convolution.
 * The conditions for "1x1" are CMSIS-NN's, so the two libraries agree on when scratch is 0.
 */
#include <stddef.h>

#include "arm_nnfunctions.h"

static int is_unpadded_1x1(const cmsis_nn_conv_params *conv_params,
                           const cmsis_nn_dims *input_dims,
                           const cmsis_nn_dims *filter_dims)
{
    return conv_params->padding.w == 0 && conv_params->padding.h == 0 && filter_dims->w == 1 &&
        filter_dims->h == 1 && conv_params->dilation.w == 1 && conv_params->dilation.h == 1 &&
        input_dims->c == filter_dims->c;
}

arm_cmsis_nn_status arm_convolve_wrapper_s8(const cmsis_nn_context *ctx,
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
    if (is_unpadded_1x1(conv_params, input_dims, filter_dims))
    {
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
    return arm_convolve_s8(ctx,
                           conv_params,
                           quant_params,
                           input_dims,
                           input_data,
                           filter_dims,
                           filter_data,
                           bias_dims,
                           bias_data,
                           NULL,
                           output_dims,
                           output_data);
}

int32_t arm_convolve_wrapper_s8_get_buffer_size(const cmsis_nn_conv_params *conv_params,
                                                const cmsis_nn_dims *input_dims,
                                                const cmsis_nn_dims *filter_dims,
                                                const cmsis_nn_dims *output_dims)
{
    (void)output_dims;
    if (is_unpadded_1x1(conv_params, input_dims, filter_dims))
    {
        return 0;
    }
    return arm_convolve_s8_get_buffer_size(input_dims, filter_dims);
}
