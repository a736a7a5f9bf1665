/*
 * emc_nn: int8 max and average pooling (arm_max_pool_s8, arm_avgpool_s8).
 *
 * Windows are clipped to the input once per output pixel (padding holds the top/left amount only).
 * Both work one channel at a time with the running maximum / sum in a register (the Cortex-M has no data
 * cache, so the strided walk costs nothing extra) and need no scratch. The average is taken over the cells
 * inside the input and rounded half away from zero, with one division per output value.
 */
#include <stddef.h>

#include "arm_nnfunctions.h"
#include "emc_nn_math.h"

/* [start, end) of the window taps k with 0 <= base + k < size. */
static void clip_window(int32_t base, int32_t kernel, int32_t size, int32_t *start, int32_t *end)
{
    *start = EMC_NN_MAX(0, -base);
    *end = EMC_NN_MAX(*start, EMC_NN_MIN(kernel, size - base));
}

arm_cmsis_nn_status arm_max_pool_s8(const cmsis_nn_context *ctx,
                                    const cmsis_nn_pool_params *pool_params,
                                    const cmsis_nn_dims *input_dims,
                                    const int8_t *input_data,
                                    const cmsis_nn_dims *filter_dims,
                                    const cmsis_nn_dims *output_dims,
                                    int8_t *output_data)
{
    (void)ctx;
    const int32_t in_h = input_dims->h;
    const int32_t in_w = input_dims->w;
    const int32_t c = input_dims->c;
    const int32_t act_min = pool_params->activation.min;
    const int32_t act_max = pool_params->activation.max;
    if (input_dims->n < 1)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    int8_t *out = output_data;
    for (int32_t batch = 0; batch < input_dims->n; batch++)
    {
        const int8_t *in_batch = input_data + batch * in_h * in_w * c;
        for (int32_t oy = 0; oy < output_dims->h; oy++)
        {
            const int32_t base_y = oy * pool_params->stride.h - pool_params->padding.h;
            int32_t ky0;
            int32_t ky1;
            clip_window(base_y, filter_dims->h, in_h, &ky0, &ky1);
            for (int32_t ox = 0; ox < output_dims->w; ox++)
            {
                const int32_t base_x = ox * pool_params->stride.w - pool_params->padding.w;
                int32_t kx0;
                int32_t kx1;
                clip_window(base_x, filter_dims->w, in_w, &kx0, &kx1);
                const int32_t row_step = in_w * c;
                const int32_t first = ((base_y + ky0) * in_w + base_x + kx0) * c; /* index, read only if valid */
                for (int32_t ch = 0; ch < c; ch++)
                {
                    /* An empty window (entirely in the padding) gives the lowest value, then the clamp. */
                    int32_t max = INT8_MIN;
                    for (int32_t ky = 0; ky < ky1 - ky0; ky++)
                    {
                        const int8_t *in = in_batch + (first + ky * row_step + ch);
                        for (int32_t kx = 0; kx < kx1 - kx0; kx++)
                        {
                            max = EMC_NN_MAX(max, in[kx * c]);
                        }
                    }
                    out[ch] = emc_nn_clamp_s8(max, act_min, act_max);
                }
                out += c;
            }
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}

arm_cmsis_nn_status arm_avgpool_s8(const cmsis_nn_context *ctx,
                                   const cmsis_nn_pool_params *pool_params,
                                   const cmsis_nn_dims *input_dims,
                                   const int8_t *input_data,
                                   const cmsis_nn_dims *filter_dims,
                                   const cmsis_nn_dims *output_dims,
                                   int8_t *output_data)
{
    (void)ctx;
    const int32_t in_h = input_dims->h;
    const int32_t in_w = input_dims->w;
    const int32_t c = input_dims->c;
    const int32_t act_min = pool_params->activation.min;
    const int32_t act_max = pool_params->activation.max;
    if (input_dims->n < 1)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    int8_t *out = output_data;
    for (int32_t batch = 0; batch < input_dims->n; batch++)
    {
        const int8_t *in_batch = input_data + batch * in_h * in_w * c;
        for (int32_t oy = 0; oy < output_dims->h; oy++)
        {
            const int32_t base_y = oy * pool_params->stride.h - pool_params->padding.h;
            int32_t ky0;
            int32_t ky1;
            clip_window(base_y, filter_dims->h, in_h, &ky0, &ky1);
            for (int32_t ox = 0; ox < output_dims->w; ox++)
            {
                const int32_t base_x = ox * pool_params->stride.w - pool_params->padding.w;
                int32_t kx0;
                int32_t kx1;
                clip_window(base_x, filter_dims->w, in_w, &kx0, &kx1);
                const int32_t count = (ky1 - ky0) * (kx1 - kx0);
                if (count == 0)
                {
                    return ARM_CMSIS_NN_ARG_ERROR; /* a window entirely in the padding has no average */
                }
                const int32_t row_step = in_w * c;
                const int32_t first = ((base_y + ky0) * in_w + base_x + kx0) * c; /* index, read only if valid */
                for (int32_t ch = 0; ch < c; ch++)
                {
                    int32_t sum = 0;
                    for (int32_t ky = 0; ky < ky1 - ky0; ky++)
                    {
                        const int8_t *in = in_batch + (first + ky * row_step + ch);
                        for (int32_t kx = 0; kx < kx1 - kx0; kx++)
                        {
                            sum += in[kx * c];
                        }
                    }
                    /* Round half away from zero; C division truncates towards zero. */
                    const int32_t average = (sum > 0 ? sum + count / 2 : sum - count / 2) / count;
                    out[ch] = emc_nn_clamp_s8(average, act_min, act_max);
                }
                out += c;
            }
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}

int32_t arm_avgpool_s8_get_buffer_size(const int dim_dst_width, const int ch_src)
{
    (void)dim_dst_width;
    (void)ch_src;
    return 0;
}
