/*
 * emc_nn: general int8 convolution (arm_convolve_s8, arm_convolve_1_x_n_s8).
 *
 * For each output pixel the receptive field is copied into the scratch buffer as int16 values with the
 * input offset already added (padding becomes 0), so the inner loop is a plain multiply-accumulate.
 * Two output pixels are built at a time: each weight is loaded once for two columns. With the DSP
 * extension the inner loop multiplies two pairs per instruction (see emc_nn_dot.h).
 * Scratch: 2 columns x KH*KW*C_filter int16 = 4*KH*KW*C_filter bytes, never more than CMSIS-NN's
 * 4*align4(KH*KW*C_IN).
 */
#include <stddef.h>

#include "arm_nnfunctions.h"
#include "emc_nn_dot.h"
#include "emc_nn_math.h"

/* What the column builder needs to know about the input and the window. */
typedef struct
{
    const int8_t *input;   /* this batch, first channel of the group */
    int32_t input_w;       /* stored width (input_dims->w >> upscale_w_shift) */
    int32_t input_c;       /* channels of one stored pixel */
    int32_t virtual_h;     /* input_dims->h, the (possibly upscaled) height the window moves over */
    int32_t virtual_w;     /* input_dims->w */
    int32_t upscale_h_shift; /* 1: odd rows are inserted zeros */
    int32_t upscale_w_shift; /* 1: odd columns are inserted zeros */
    int32_t kernel_h, kernel_w, kernel_c;
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;
    int32_t dilation_h, dilation_w;
    int32_t input_offset;
    int runs_aligned; /* kernel_c % 4 == 0: every run of channels starts a group of four (emc_nn_dot.h) */
} conv_window;

/* Receptive field of output pixel (out_y, out_x) as int16 (value + input_offset, 0 outside the input),
 * in the element order the dot product wants (emc_nn_column_to_dot_order). */
static void build_column(const conv_window *win, int32_t out_y, int32_t out_x, int16_t *col)
{
    int16_t *const start = col;
    const int32_t base_y = out_y * win->stride_h - win->pad_h;
    const int32_t base_x = out_x * win->stride_w - win->pad_w;
    const int32_t kc = win->kernel_c;
    for (int32_t ky = 0; ky < win->kernel_h; ky++)
    {
        const int32_t y = base_y + ky * win->dilation_h;
        const int row_ok = y >= 0 && y < win->virtual_h && (win->upscale_h_shift == 0 || (y & 1) == 0);
        for (int32_t kx = 0; kx < win->kernel_w; kx++)
        {
            const int32_t x = base_x + kx * win->dilation_w;
            if (row_ok && x >= 0 && x < win->virtual_w && (win->upscale_w_shift == 0 || (x & 1) == 0))
            {
                const int32_t pixel = (y >> win->upscale_h_shift) * win->input_w + (x >> win->upscale_w_shift);
                const int8_t *src = win->input + pixel * win->input_c;
                if (win->runs_aligned)
                {
                    emc_nn_widen_s8(src, win->input_offset, col, kc);
                }
                else
                {
                    for (int32_t c = 0; c < kc; c++)
                    {
                        col[c] = (int16_t)(src[c] + win->input_offset);
                    }
                }
            }
            else
            {
                for (int32_t c = 0; c < kc; c++)
                {
                    col[c] = 0;
                }
            }
            col += kc;
        }
    }
    if (!win->runs_aligned)
    {
        /* Runs straddle the groups of four: the widened runs are not in dot order yet. */
        emc_nn_column_to_dot_order(start, (int32_t)(col - start));
    }
}

arm_cmsis_nn_status arm_convolve_s8(const cmsis_nn_context *ctx,
                                    const cmsis_nn_conv_params *conv_params,
                                    const cmsis_nn_per_channel_quant_params *quant_params,
                                    const cmsis_nn_dims *input_dims,
                                    const int8_t *input_data,
                                    const cmsis_nn_dims *filter_dims,
                                    const int8_t *filter_data,
                                    const cmsis_nn_dims *bias_dims,
                                    const int32_t *bias_data,
                                    const cmsis_nn_dims *upscale_dims,
                                    const cmsis_nn_dims *output_dims,
                                    int8_t *output_data)
{
    (void)bias_dims;
    if (ctx == NULL || ctx->buf == NULL || filter_dims->c <= 0 ||
        ctx->size < arm_convolve_s8_get_buffer_size(input_dims, filter_dims))
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    const int32_t input_c = input_dims->c;
    const int32_t output_c = output_dims->c;
    const int32_t groups = input_c / filter_dims->c;
    if (groups <= 0 || input_c % groups != 0 || output_c % groups != 0)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    const int32_t out_c_per_group = output_c / groups;
    const int32_t col_len = filter_dims->h * filter_dims->w * filter_dims->c;
    const int32_t out_pixels = output_dims->h * output_dims->w;
    const int32_t act_min = conv_params->activation.min;
    const int32_t act_max = conv_params->activation.max;
    const int32_t output_offset = conv_params->output_offset;
    int16_t *col0 = (int16_t *)ctx->buf;
    int16_t *col1 = col0 + col_len;

    conv_window win;
    win.upscale_h_shift = (upscale_dims != NULL && upscale_dims->h == 2) ? 1 : 0;
    win.upscale_w_shift = (upscale_dims != NULL && upscale_dims->w == 2) ? 1 : 0;
    win.input_w = input_dims->w >> win.upscale_w_shift;
    win.input_c = input_c;
    win.virtual_h = input_dims->h;
    win.virtual_w = input_dims->w;
    win.kernel_h = filter_dims->h;
    win.kernel_w = filter_dims->w;
    win.kernel_c = filter_dims->c;
    win.stride_h = conv_params->stride.h;
    win.stride_w = conv_params->stride.w;
    win.pad_h = conv_params->padding.h;
    win.pad_w = conv_params->padding.w;
    win.dilation_h = conv_params->dilation.h;
    win.dilation_w = conv_params->dilation.w;
    win.input_offset = conv_params->input_offset;
    win.runs_aligned = filter_dims->c % 4 == 0;
    const int32_t input_batch_size = (input_dims->h >> win.upscale_h_shift) * win.input_w * input_c;

    for (int32_t batch = 0; batch < input_dims->n; batch++)
    {
        int8_t *out_batch = output_data + batch * out_pixels * output_c;
        for (int32_t group = 0; group < groups; group++)
        {
            win.input = input_data + batch * input_batch_size + group * filter_dims->c;
            const int32_t first_oc = group * out_c_per_group;
            int32_t y0 = 0; /* position of the first pixel of the pair */
            int32_t x0 = 0;
            for (int32_t pixel = 0; pixel < out_pixels; pixel += 2)
            {
                const int two = pixel + 1 < out_pixels;
                int32_t y1 = y0;
                int32_t x1 = x0 + 1;
                if (x1 == output_dims->w)
                {
                    x1 = 0;
                    y1++;
                }
                build_column(&win, y0, x0, col0);
                if (two)
                {
                    build_column(&win, y1, x1, col1);
                }
                y0 = y1;
                x0 = x1 + 1;
                if (x0 == output_dims->w)
                {
                    x0 = 0;
                    y0++;
                }
                int8_t *out0 = out_batch + pixel * output_c;
                int8_t *out1 = out0 + output_c;
                int32_t oc = first_oc;
                if (two)
                {
                    /* Two output channels x two pixels per pass over the column. */
                    for (; oc + 2 <= first_oc + out_c_per_group; oc += 2)
                    {
                        uint32_t acc[4];
                        acc[0] = acc[1] = bias_data != NULL ? (uint32_t)bias_data[oc] : 0u;
                        acc[2] = acc[3] = bias_data != NULL ? (uint32_t)bias_data[oc + 1] : 0u;
                        emc_nn_dot_s8_s16_2x2(filter_data + oc * col_len, filter_data + (oc + 1) * col_len, col0,
                                              col1, col_len, acc);
                        const int32_t m0 = quant_params->multiplier[oc];
                        const int32_t s0 = quant_params->shift[oc];
                        const int32_t m1 = quant_params->multiplier[oc + 1];
                        const int32_t s1 = quant_params->shift[oc + 1];
                        out0[oc] = emc_nn_requantize_to_s8((int32_t)acc[0], m0, s0, output_offset, act_min, act_max);
                        out1[oc] = emc_nn_requantize_to_s8((int32_t)acc[1], m0, s0, output_offset, act_min, act_max);
                        out0[oc + 1] =
                            emc_nn_requantize_to_s8((int32_t)acc[2], m1, s1, output_offset, act_min, act_max);
                        out1[oc + 1] =
                            emc_nn_requantize_to_s8((int32_t)acc[3], m1, s1, output_offset, act_min, act_max);
                    }
                }
                for (; oc < first_oc + out_c_per_group; oc++)
                {
                    const int8_t *weights = filter_data + oc * col_len;
                    const uint32_t bias = bias_data != NULL ? (uint32_t)bias_data[oc] : 0u;
                    const int32_t mult = quant_params->multiplier[oc];
                    const int32_t shift = quant_params->shift[oc];
                    if (two)
                    {
                        uint32_t acc0 = bias;
                        uint32_t acc1 = bias;
                        emc_nn_dot_s8_s16_x2c(weights, col0, col1, col_len, &acc0, &acc1);
                        out0[oc] = emc_nn_requantize_to_s8((int32_t)acc0, mult, shift, output_offset, act_min, act_max);
                        out1[oc] = emc_nn_requantize_to_s8((int32_t)acc1, mult, shift, output_offset, act_min, act_max);
                    }
                    else
                    {
                        const uint32_t acc = emc_nn_dot_s8_s16(weights, col0, col_len, bias);
                        out0[oc] = emc_nn_requantize_to_s8((int32_t)acc, mult, shift, output_offset, act_min, act_max);
                    }
                }
            }
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}

int32_t arm_convolve_s8_get_buffer_size(const cmsis_nn_dims *input_dims, const cmsis_nn_dims *filter_dims)
{
    (void)input_dims;
    /* Two int16 columns of the receptive field. */
    return 2 * filter_dims->h * filter_dims->w * filter_dims->c * (int32_t)sizeof(int16_t);
}

/* A 1xN convolution is an ordinary convolution here; the entry point exists for API compatibility. */
arm_cmsis_nn_status arm_convolve_1_x_n_s8(const cmsis_nn_context *ctx,
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
    if (input_dims->h != 1 || conv_params->dilation.w != 1 || conv_params->stride.w == 0)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
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

int32_t arm_convolve_1_x_n_s8_get_buffer_size(const cmsis_nn_conv_params *conv_params,
                                              const cmsis_nn_dims *input_dims,
                                              const cmsis_nn_dims *filter_dims,
                                              const cmsis_nn_dims *output_dims)
{
    (void)conv_params;
    (void)output_dims;
    return arm_convolve_s8_get_buffer_size(input_dims, filter_dims);
}
