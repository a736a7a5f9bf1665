/*
 * emc_nn extra operations (see emc_nn_extra.h). Always compiled, also next to the real CMSIS-NN, so it must
 * not call arm_* functions or define arm_* symbols; the shared fixed-point helpers are static inline.
 */
#include <string.h>

#include "emc_nn_extra.h"
#include "emc_nn_math.h"

arm_cmsis_nn_status emc_nn_pad_s8(const int8_t *input,
                                  const cmsis_nn_dims *input_dims,
                                  int32_t pad_top,
                                  int32_t pad_bottom,
                                  int32_t pad_left,
                                  int32_t pad_right,
                                  int8_t pad_value,
                                  int8_t *output)
{
    if (pad_top < 0 || pad_bottom < 0 || pad_left < 0 || pad_right < 0)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    const int32_t c = input_dims->c;
    const size_t row_in = (size_t)input_dims->w * (size_t)c;
    const size_t left = (size_t)pad_left * (size_t)c;
    const size_t right = (size_t)pad_right * (size_t)c;
    const size_t row_out = left + row_in + right;
    for (int32_t batch = 0; batch < input_dims->n; batch++)
    {
        memset(output, pad_value, (size_t)pad_top * row_out);
        output += (size_t)pad_top * row_out;
        for (int32_t y = 0; y < input_dims->h; y++)
        {
            memset(output, pad_value, left);
            memcpy(output + left, input, row_in);
            memset(output + left + row_in, pad_value, right);
            input += row_in;
            output += row_out;
        }
        memset(output, pad_value, (size_t)pad_bottom * row_out);
        output += (size_t)pad_bottom * row_out;
    }
    return ARM_CMSIS_NN_SUCCESS;
}

void emc_nn_concat_s8(const int8_t *input,
                      int32_t outer_size,
                      int32_t input_channels,
                      int32_t output_channels,
                      int32_t channel_offset,
                      int8_t *output)
{
    for (int32_t i = 0; i < outer_size; i++)
    {
        memcpy(output + (size_t)i * (size_t)output_channels + (size_t)channel_offset,
               input + (size_t)i * (size_t)input_channels, (size_t)input_channels);
    }
}

void emc_nn_requantize_s8(const int8_t *input,
                          int32_t size,
                          int32_t input_offset,
                          int32_t mult,
                          int32_t shift,
                          int32_t output_offset,
                          int8_t *output)
{
    for (int32_t i = 0; i < size; i++)
    {
        output[i] = emc_nn_requantize_to_s8(input[i] + input_offset, mult, shift, output_offset, -128, 127);
    }
}

arm_cmsis_nn_status emc_nn_mean_s8(const int8_t *input,
                                   const cmsis_nn_dims *input_dims,
                                   int32_t input_offset,
                                   int32_t mult,
                                   int32_t shift,
                                   int32_t output_offset,
                                   int8_t *output)
{
    const int32_t count = input_dims->h * input_dims->w;
    const int32_t c = input_dims->c;
    if (count <= 0)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    /* TFLite folds 1/count into the multiplier: m' = (m << s) / count, shift' = shift - s with
     * s = floor(log2(count)) limited to 32 and to 31 + shift. */
    int32_t extra = 31 - emc_nn_clz((uint32_t)count);
    extra = EMC_NN_MIN(extra, 31 + shift);
    if (extra < 0)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    const int32_t mean_mult = (int32_t)(((int64_t)mult * ((int64_t)1 << extra)) / count);
    const int32_t mean_shift = shift - extra;
    const int32_t offset_sum = input_offset * count;

    for (int32_t batch = 0; batch < input_dims->n; batch++)
    {
        const int8_t *in = input + (size_t)batch * (size_t)count * (size_t)c;
        for (int32_t ch = 0; ch < c; ch++)
        {
            int32_t sum = offset_sum;
            for (int32_t i = 0; i < count; i++)
            {
                sum += in[i * c + ch];
            }
            output[batch * c + ch] = emc_nn_requantize_to_s8(sum, mean_mult, mean_shift, output_offset, -128, 127);
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}

/* round(v) with halves away from zero, for |v| < 2^23 (the callers clamp first); no libm needed. */
static int32_t round_half_away(float v)
{
    int32_t t = (int32_t)v;          /* truncation towards zero */
    const float frac = v - (float)t; /* exact for |v| < 2^23 */
    if (frac >= 0.5f)
    {
        t++;
    }
    else if (frac <= -0.5f)
    {
        t--;
    }
    return t;
}

/* TFLite's nearest-neighbour source index (computed in float, as TFLite does). */
static int32_t nearest_source(int32_t dst, int32_t in_size, int32_t out_size, bool align_corners,
                              bool half_pixel_centers)
{
    const float scale = (align_corners && out_size > 1) ? (float)(in_size - 1) / (float)(out_size - 1)
                                                        : (float)in_size / (float)out_size;
    const float pos = ((float)dst + (half_pixel_centers ? 0.5f : 0.0f)) * scale;
    /* pos >= 0, so truncation is floor. */
    int32_t src = align_corners ? round_half_away(pos) : (int32_t)pos;
    src = EMC_NN_MIN(src, in_size - 1);
    return EMC_NN_MAX(src, 0);
}

arm_cmsis_nn_status emc_nn_resize_nearest_s8(const int8_t *input,
                                             const cmsis_nn_dims *input_dims,
                                             int32_t output_h,
                                             int32_t output_w,
                                             bool align_corners,
                                             bool half_pixel_centers,
                                             int8_t *output)
{
    const int32_t in_h = input_dims->h;
    const int32_t in_w = input_dims->w;
    const size_t c = (size_t)input_dims->c;
    if (in_h <= 0 || in_w <= 0 || output_h <= 0 || output_w <= 0 || in_h >= (1 << 23) || in_w >= (1 << 23))
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    for (int32_t batch = 0; batch < input_dims->n; batch++)
    {
        const int8_t *in_batch = input + (size_t)batch * (size_t)in_h * (size_t)in_w * c;
        for (int32_t y = 0; y < output_h; y++)
        {
            const int32_t sy = nearest_source(y, in_h, output_h, align_corners, half_pixel_centers);
            for (int32_t x = 0; x < output_w; x++)
            {
                const int32_t sx = nearest_source(x, in_w, output_w, align_corners, half_pixel_centers);
                memcpy(output, in_batch + ((size_t)sy * (size_t)in_w + (size_t)sx) * c, c);
                output += c;
            }
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}

void emc_nn_quantize_f32_s8(const float *input, int32_t size, float scale, int32_t zero_point, int8_t *output)
{
    for (int32_t i = 0; i < size; i++)
    {
        float v = input[i] / scale; /* a float division, as TFLite's reference kernel does */
        /* Anything beyond +-1000 saturates anyway; NaN (v != v) becomes 0. */
        v = v != v ? 0.0f : v;
        v = v > 1000.0f ? 1000.0f : v;
        v = v < -1000.0f ? -1000.0f : v;
        output[i] = emc_nn_clamp_s8(round_half_away(v) + zero_point, -128, 127);
    }
}

void emc_nn_dequantize_s8_f32(const int8_t *input, int32_t size, float scale, int32_t zero_point, float *output)
{
    /* TFLite computes double(scale) * (q - zp) and rounds to float; the exact product of a float and an
     * integer below 2^9 fits in a double, so one float multiplication gives the same bits. */
    for (int32_t i = 0; i < size; i++)
    {
        output[i] = scale * (float)(input[i] - zero_point);
    }
}
