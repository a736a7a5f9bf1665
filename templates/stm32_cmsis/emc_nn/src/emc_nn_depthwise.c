/*
 * emc_nn: int8 depthwise convolution (arm_depthwise_conv_wrapper_s8, arm_depthwise_conv_s8).
 *
 * Output channel oc = ic * ch_mult + m reads input channel ic; weights are 1HWC with C = C_OUT.
 * The part of the window that lies inside the input is computed once per output pixel, so the inner
 * loops have no bounds checks; padded cells contribute nothing (they hold the input zero point).
 * With ch_mult 1, four channels are accumulated per pass over the window to share the loop overhead (and,
 * with the DSP extension, the loads: see window_dot4).
 * No scratch memory.
 */
#include <stddef.h>

#include "arm_nnfunctions.h"
#include "emc_nn_dot.h"
#include "emc_nn_math.h"

/* [start, end) of the kernel taps k with 0 <= base + k * dilation < size. */
static void valid_taps(int32_t base, int32_t dilation, int32_t kernel, int32_t size, int32_t *start, int32_t *end)
{
    int32_t first = 0;
    if (base < 0)
    {
        first = (-base + dilation - 1) / dilation;
    }
    int32_t last = kernel;
    if (size - base <= 0)
    {
        last = 0;
    }
    else
    {
        const int32_t taps_inside = (size - base + dilation - 1) / dilation;
        last = EMC_NN_MIN(kernel, taps_inside);
    }
    *start = first;
    *end = EMC_NN_MAX(first, last);
}

typedef struct
{
    int32_t input_c;     /* channels of an input pixel */
    int32_t output_c;    /* channels of an output pixel = weight row length */
    int32_t row_step;    /* input elements from one tap row to the next (dilation_h rows) */
    int32_t tap_step;    /* input elements from one tap to the next in a row (dilation_w pixels) */
    int32_t kernel_w;
    int32_t ky0, ky1, kx0, kx1;
    int32_t input_offset;
} dw_window;

/* Sum over the window of (x + offset) * w for one input channel column and one weight column.
 * origin is the index in `in` of tap (0, 0), which may lie outside the input; only valid taps are read. */
static uint32_t window_dot(const dw_window *win, const int8_t *in, int32_t origin, const int8_t *w, uint32_t acc)
{
    for (int32_t ky = win->ky0; ky < win->ky1; ky++)
    {
        const int32_t row = origin + ky * win->row_step;
        const int8_t *k_row = w + ky * win->kernel_w * win->output_c;
        for (int32_t kx = win->kx0; kx < win->kx1; kx++)
        {
            acc += (uint32_t)((in[row + kx * win->tap_step] + win->input_offset) * k_row[kx * win->output_c]);
        }
    }
    return acc;
}

/* The same for four neighbouring channels at once (ch_mult 1: input and weight channels coincide). With the
 * DSP extension one 32-bit load brings the four channels of a tap: SXTAB16 widens channels 0, 2 (then 1, 3)
 * and adds the offset, SXTB16 widens the weights, and SMLABB / SMLATT multiply-accumulate each channel. */
static void window_dot4(const dw_window *win, const int8_t *in, int32_t origin, const int8_t *w, uint32_t acc[4])
{
    const int32_t offset = win->input_offset;
#if EMC_NN_DSP
    const int32_t offset2 = emc_nn_dup16(offset);
    int32_t a0 = (int32_t)acc[0];
    int32_t a1 = (int32_t)acc[1];
    int32_t a2 = (int32_t)acc[2];
    int32_t a3 = (int32_t)acc[3];
    for (int32_t ky = win->ky0; ky < win->ky1; ky++)
    {
        const int32_t row = origin + ky * win->row_step;
        const int8_t *k_row = w + ky * win->kernel_w * win->output_c;
        for (int32_t kx = win->kx0; kx < win->kx1; kx++)
        {
            const int32_t xw = emc_nn_load32(in + (row + kx * win->tap_step));
            const int32_t kw = emc_nn_load32(k_row + kx * win->output_c);
            const int32_t x02 = __sxtab16(offset2, xw);
            const int32_t x13 = emc_nn_sxtab16_ror8(offset2, xw);
            const int32_t k02 = __sxtb16(kw);
            const int32_t k13 = emc_nn_sxtb16_ror8(kw);
            a0 = __smlabb(x02, k02, a0);
            a2 = __smlatt(x02, k02, a2);
            a1 = __smlabb(x13, k13, a1);
            a3 = __smlatt(x13, k13, a3);
        }
    }
    acc[0] = (uint32_t)a0;
    acc[1] = (uint32_t)a1;
    acc[2] = (uint32_t)a2;
    acc[3] = (uint32_t)a3;
#else
    uint32_t a0 = acc[0];
    uint32_t a1 = acc[1];
    uint32_t a2 = acc[2];
    uint32_t a3 = acc[3];
    for (int32_t ky = win->ky0; ky < win->ky1; ky++)
    {
        const int32_t row = origin + ky * win->row_step;
        const int8_t *k_row = w + ky * win->kernel_w * win->output_c;
        for (int32_t kx = win->kx0; kx < win->kx1; kx++)
        {
            const int8_t *x = in + (row + kx * win->tap_step);
            const int8_t *k = k_row + kx * win->output_c;
            a0 += (uint32_t)((x[0] + offset) * k[0]);
            a1 += (uint32_t)((x[1] + offset) * k[1]);
            a2 += (uint32_t)((x[2] + offset) * k[2]);
            a3 += (uint32_t)((x[3] + offset) * k[3]);
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
#endif
}

arm_cmsis_nn_status arm_depthwise_conv_s8(const cmsis_nn_context *ctx,
                                          const cmsis_nn_dw_conv_params *dw_conv_params,
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
    (void)bias_dims;
    const int32_t ch_mult = dw_conv_params->ch_mult;
    const int32_t in_h = input_dims->h;
    const int32_t in_w = input_dims->w;
    const int32_t in_c = input_dims->c;
    const int32_t out_c = in_c * ch_mult;
    const int32_t dil_h = dw_conv_params->dilation.h;
    const int32_t dil_w = dw_conv_params->dilation.w;
    const int32_t output_offset = dw_conv_params->output_offset;
    const int32_t act_min = dw_conv_params->activation.min;
    const int32_t act_max = dw_conv_params->activation.max;
    const int32_t *mult = quant_params->multiplier;
    const int32_t *shift = quant_params->shift;
    if (ch_mult < 1 || dil_h < 1 || dil_w < 1)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }

    dw_window win;
    win.input_c = in_c;
    win.output_c = out_c;
    win.row_step = dil_h * in_w * in_c;
    win.tap_step = dil_w * in_c;
    win.kernel_w = filter_dims->w;
    win.input_offset = dw_conv_params->input_offset;

    int8_t *out = output_data;
    for (int32_t batch = 0; batch < input_dims->n; batch++)
    {
        const int8_t *in_batch = input_data + batch * in_h * in_w * in_c;
        for (int32_t oy = 0; oy < output_dims->h; oy++)
        {
            const int32_t base_y = oy * dw_conv_params->stride.h - dw_conv_params->padding.h;
            valid_taps(base_y, dil_h, filter_dims->h, in_h, &win.ky0, &win.ky1);
            for (int32_t ox = 0; ox < output_dims->w; ox++)
            {
                const int32_t base_x = ox * dw_conv_params->stride.w - dw_conv_params->padding.w;
                valid_taps(base_x, dil_w, filter_dims->w, in_w, &win.kx0, &win.kx1);
                /* Index of tap (0, 0) of this window; it may be outside the input (padding). */
                const int32_t origin = (base_y * in_w + base_x) * in_c;
                int32_t oc = 0;
                if (ch_mult == 1)
                {
                    for (; oc + 4 <= out_c; oc += 4)
                    {
                        uint32_t acc[4] = {0u, 0u, 0u, 0u};
                        if (bias_data != NULL)
                        {
                            for (int32_t i = 0; i < 4; i++)
                            {
                                acc[i] = (uint32_t)bias_data[oc + i];
                            }
                        }
                        window_dot4(&win, in_batch, origin + oc, filter_data + oc, acc);
                        for (int32_t i = 0; i < 4; i++)
                        {
                            out[oc + i] = emc_nn_requantize_to_s8((int32_t)acc[i], mult[oc + i], shift[oc + i],
                                                               output_offset, act_min, act_max);
                        }
                    }
                }
                for (; oc < out_c; oc++)
                {
                    const uint32_t bias = bias_data != NULL ? (uint32_t)bias_data[oc] : 0u;
                    const uint32_t acc = window_dot(&win, in_batch, origin + oc / ch_mult, filter_data + oc, bias);
                    out[oc] = emc_nn_requantize_to_s8((int32_t)acc, mult[oc], shift[oc], output_offset, act_min,
                                                   act_max);
                }
                out += out_c;
            }
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}

arm_cmsis_nn_status arm_depthwise_conv_wrapper_s8(const cmsis_nn_context *ctx,
                                                  const cmsis_nn_dw_conv_params *dw_conv_params,
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
    return arm_depthwise_conv_s8(ctx,
                                 dw_conv_params,
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

int32_t arm_depthwise_conv_wrapper_s8_get_buffer_size(const cmsis_nn_dw_conv_params *dw_conv_params,
                                                      const cmsis_nn_dims *input_dims,
                                                      const cmsis_nn_dims *filter_dims,
                                                      const cmsis_nn_dims *output_dims)
{
    (void)dw_conv_params;
    (void)input_dims;
    (void)filter_dims;
    (void)output_dims;
    return 0;
}
