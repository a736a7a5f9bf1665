/*
 * Test harness core shared by the host harness (emc_nn_vectors.c) and the firmware one
 * (emc_nn_fw_vectors.c): the case format, decoding of the scalar arguments and the calls into emc_nn.
 *
 * A case is, little-endian:
 *     int32 function id, int32 n_ints, int32 ints[n_ints], int32 n_arrays, { int32 nbytes, bytes }[n_arrays]
 * The layout of ints per function matches scalars() in emc_nn_cases.py.
 * The including file defines `static void harness_fail(const char *what)` (does not return) first.
 */
#ifndef EMC_NN_VECTORS_CORE_H
#define EMC_NN_VECTORS_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "arm_nnfunctions.h"
#include "emc_nn_extra.h"

enum
{
    FN_CONV_WRAPPER = 0,
    FN_CONV = 1,
    FN_DEPTHWISE_WRAPPER = 2,
    FN_FULLY_CONNECTED = 3,
    FN_MAX_POOL = 4,
    FN_AVG_POOL = 5,
    FN_ADD = 6,
    FN_MUL = 7,
    FN_SOFTMAX = 8,
    /* emc_nn_extra.h */
    FN_PAD = 20,
    FN_CONCAT = 21,
    FN_REQUANTIZE = 22,
    FN_MEAN = 23,
    FN_RESIZE_NEAREST = 24,
    FN_QUANTIZE = 25,
    FN_DEQUANTIZE = 26
};

#define MAX_INTS 40
#define MAX_ARRAYS 8

typedef struct
{
    int32_t fn;
    int32_t n_ints;
    int32_t ints[MAX_INTS];
    int32_t n_arrays;
    void *arrays[MAX_ARRAYS];        /* private copies the functions work on */
    const uint8_t *source[MAX_ARRAYS]; /* the original bytes in the case data, to detect modified inputs */
    int32_t sizes[MAX_ARRAYS];
} test_case;

static int32_t load_i32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v); /* little-endian host and target */
    return v;
}

/* Parse the case at *pos (before end) into tc; each array is copied into memory from alloc(nbytes), which
 * must be 4-byte aligned. Returns 0 at the end of the data. */
static int inputs_modified(const test_case *tc)
{
    for (int32_t i = 0; i < tc->n_arrays; i++)
    {
        if (memcmp(tc->source[i], tc->arrays[i], (size_t)tc->sizes[i]) != 0)
        {
            return 1;
        }
    }
    return 0;
}

static int parse_case(const uint8_t **pos, const uint8_t *end, test_case *tc, void *(*alloc)(int32_t))
{
    const uint8_t *p = *pos;
    if (p == end)
    {
        return 0;
    }
    if (end - p < 8)
    {
        harness_fail("truncated case header");
    }
    tc->fn = load_i32(p);
    tc->n_ints = load_i32(p + 4);
    p += 8;
    if (tc->n_ints < 0 || tc->n_ints > MAX_INTS || end - p < 4 * (tc->n_ints + 1))
    {
        harness_fail("bad n_ints");
    }
    for (int32_t i = 0; i < tc->n_ints; i++)
    {
        tc->ints[i] = load_i32(p);
        p += 4;
    }
    tc->n_arrays = load_i32(p);
    p += 4;
    if (tc->n_arrays < 0 || tc->n_arrays > MAX_ARRAYS)
    {
        harness_fail("bad n_arrays");
    }
    for (int32_t i = 0; i < tc->n_arrays; i++)
    {
        if (end - p < 4)
        {
            harness_fail("truncated array header");
        }
        tc->sizes[i] = load_i32(p);
        p += 4;
        if (tc->sizes[i] < 0 || end - p < tc->sizes[i])
        {
            harness_fail("bad array size");
        }
        tc->arrays[i] = alloc(tc->sizes[i]);
        tc->source[i] = p;
        memcpy(tc->arrays[i], p, (size_t)tc->sizes[i]);
        p += tc->sizes[i];
    }
    *pos = p;
    return 1;
}

static cmsis_nn_dims dims_at(const int32_t *v)
{
    cmsis_nn_dims d;
    d.n = v[0];
    d.h = v[1];
    d.w = v[2];
    d.c = v[3];
    return d;
}

static int32_t volume(const cmsis_nn_dims *d)
{
    return d->n * d->h * d->w * d->c;
}

/* Everything one call needs, decoded from a test case. */
typedef struct
{
    cmsis_nn_conv_params conv;
    cmsis_nn_dw_conv_params dw;
    cmsis_nn_fc_params fc;
    cmsis_nn_pool_params pool;
    cmsis_nn_per_channel_quant_params per_channel;
    cmsis_nn_per_tensor_quant_params per_tensor;
    cmsis_nn_dims input, filter, bias, output, upscale;
    int has_upscale;
    int32_t out_bytes;
    int32_t scratch_bytes;
} call_args;

static void decode_conv(const int32_t *v, cmsis_nn_conv_params *p)
{
    p->input_offset = v[0];
    p->output_offset = v[1];
    p->stride.w = v[2];
    p->stride.h = v[3];
    p->padding.w = v[4];
    p->padding.h = v[5];
    p->dilation.w = v[6];
    p->dilation.h = v[7];
    p->activation.min = v[8];
    p->activation.max = v[9];
}

static void decode(const test_case *tc, call_args *a)
{
    const int32_t *v = tc->ints;
    memset(a, 0, sizeof *a);
    switch (tc->fn)
    {
    case FN_CONV_WRAPPER:
    case FN_CONV:
        decode_conv(v, &a->conv);
        a->input = dims_at(v + 10);
        a->filter = dims_at(v + 14);
        a->bias = dims_at(v + 18);
        a->output = dims_at(v + 22);
        a->has_upscale = tc->fn == FN_CONV && v[26] != 0;
        a->upscale = dims_at(v + 27);
        a->per_channel.multiplier = (int32_t *)tc->arrays[3];
        a->per_channel.shift = (int32_t *)tc->arrays[4];
        a->out_bytes = volume(&a->output);
        a->scratch_bytes = tc->fn == FN_CONV
            ? arm_convolve_s8_get_buffer_size(&a->input, &a->filter)
            : arm_convolve_wrapper_s8_get_buffer_size(&a->conv, &a->input, &a->filter, &a->output);
        break;
    case FN_DEPTHWISE_WRAPPER:
        a->dw.input_offset = v[0];
        a->dw.output_offset = v[1];
        a->dw.ch_mult = v[2];
        a->dw.stride.w = v[3];
        a->dw.stride.h = v[4];
        a->dw.padding.w = v[5];
        a->dw.padding.h = v[6];
        a->dw.dilation.w = v[7];
        a->dw.dilation.h = v[8];
        a->dw.activation.min = v[9];
        a->dw.activation.max = v[10];
        a->input = dims_at(v + 11);
        a->filter = dims_at(v + 15);
        a->bias = dims_at(v + 19);
        a->output = dims_at(v + 23);
        a->per_channel.multiplier = (int32_t *)tc->arrays[3];
        a->per_channel.shift = (int32_t *)tc->arrays[4];
        a->out_bytes = volume(&a->output);
        a->scratch_bytes = arm_depthwise_conv_wrapper_s8_get_buffer_size(&a->dw, &a->input, &a->filter, &a->output);
        break;
    case FN_FULLY_CONNECTED:
        a->fc.input_offset = v[0];
        a->fc.filter_offset = v[1];
        a->fc.output_offset = v[2];
        a->fc.activation.min = v[3];
        a->fc.activation.max = v[4];
        a->per_tensor.multiplier = v[5];
        a->per_tensor.shift = v[6];
        a->input = dims_at(v + 7);
        a->filter = dims_at(v + 11);
        a->bias = dims_at(v + 15);
        a->output = dims_at(v + 19);
        a->out_bytes = a->output.n * a->output.c;
        a->scratch_bytes = arm_fully_connected_s8_get_buffer_size(&a->filter);
        break;
    case FN_MAX_POOL:
    case FN_AVG_POOL:
        a->pool.stride.w = v[0];
        a->pool.stride.h = v[1];
        a->pool.padding.w = v[2];
        a->pool.padding.h = v[3];
        a->pool.activation.min = v[4];
        a->pool.activation.max = v[5];
        a->input = dims_at(v + 6);
        a->filter = dims_at(v + 10);
        a->output = dims_at(v + 14);
        a->out_bytes = volume(&a->output);
        a->scratch_bytes = tc->fn == FN_AVG_POOL ? arm_avgpool_s8_get_buffer_size(a->output.w, a->input.c) : 0;
        break;
    case FN_ADD:
        a->out_bytes = v[12];
        break;
    case FN_MUL:
        a->out_bytes = v[7];
        break;
    case FN_SOFTMAX:
        a->out_bytes = v[0] * v[1];
        break;
    case FN_PAD:
        a->input = dims_at(v);
        a->out_bytes = a->input.n * (a->input.h + v[4] + v[5]) * (a->input.w + v[6] + v[7]) * a->input.c;
        break;
    case FN_CONCAT:
        a->out_bytes = 0;
        for (int32_t i = 0; i < v[1]; i++)
        {
            a->out_bytes += v[0] * v[2 + i];
        }
        break;
    case FN_REQUANTIZE:
    case FN_QUANTIZE:
        a->out_bytes = v[0];
        break;
    case FN_DEQUANTIZE:
        a->out_bytes = v[0] * (int32_t)sizeof(float);
        break;
    case FN_MEAN:
        a->input = dims_at(v);
        a->out_bytes = a->input.n * a->input.c;
        break;
    case FN_RESIZE_NEAREST:
        a->input = dims_at(v);
        a->out_bytes = a->input.n * v[4] * v[5] * a->input.c;
        break;
    default:
        harness_fail("unknown function id");
    }
}

static float float_bits(int32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* The emc_nn_extra.h functions. */
static int32_t call_extra(const test_case *tc, const call_args *a, int8_t *out)
{
    const int32_t *v = tc->ints;
    const int8_t *in0 = (const int8_t *)tc->arrays[0];
    switch (tc->fn)
    {
    case FN_PAD:
        return emc_nn_pad_s8(in0, &a->input, v[4], v[5], v[6], v[7], (int8_t)v[8], out);
    case FN_CONCAT:
    {
        int32_t offset = 0;
        int32_t total = 0;
        for (int32_t i = 0; i < v[1]; i++)
        {
            total += v[2 + i];
        }
        for (int32_t i = 0; i < v[1]; i++)
        {
            emc_nn_concat_s8((const int8_t *)tc->arrays[i], v[0], v[2 + i], total, offset, out);
            offset += v[2 + i];
        }
        return 0;
    }
    case FN_REQUANTIZE:
        emc_nn_requantize_s8(in0, v[0], v[1], v[2], v[3], v[4], out);
        return 0;
    case FN_MEAN:
        return emc_nn_mean_s8(in0, &a->input, v[4], v[5], v[6], v[7], out);
    case FN_RESIZE_NEAREST:
        return emc_nn_resize_nearest_s8(in0, &a->input, v[4], v[5], v[6] != 0, v[7] != 0, out);
    case FN_QUANTIZE:
        emc_nn_quantize_f32_s8((const float *)tc->arrays[0], v[0], float_bits(v[1]), v[2], out);
        return 0;
    case FN_DEQUANTIZE:
        emc_nn_dequantize_s8_f32(in0, v[0], float_bits(v[1]), v[2], (float *)(void *)out);
        return 0;
    default:
        harness_fail("unknown function id");
    }
    return -100;
}

static int32_t call(const test_case *tc, const call_args *a, const cmsis_nn_context *ctx, int8_t *out)
{
    const int32_t *v = tc->ints;
    const int8_t *in0 = (const int8_t *)tc->arrays[0];
    const int8_t *filter = tc->n_arrays > 1 ? (const int8_t *)tc->arrays[1] : NULL;
    /* An empty bias array stands for bias_data == NULL. */
    const int32_t *bias = tc->n_arrays > 2 && tc->sizes[2] > 0 ? (const int32_t *)tc->arrays[2] : NULL;
    switch (tc->fn)
    {
    case FN_CONV_WRAPPER:
        return arm_convolve_wrapper_s8(ctx, &a->conv, &a->per_channel, &a->input, in0, &a->filter, filter, &a->bias,
                                       bias, &a->output, out);
    case FN_CONV:
        return arm_convolve_s8(ctx, &a->conv, &a->per_channel, &a->input, in0, &a->filter, filter, &a->bias, bias,
                               a->has_upscale ? &a->upscale : NULL, &a->output, out);
    case FN_DEPTHWISE_WRAPPER:
        return arm_depthwise_conv_wrapper_s8(ctx, &a->dw, &a->per_channel, &a->input, in0, &a->filter, filter,
                                             &a->bias, bias, &a->output, out);
    case FN_FULLY_CONNECTED:
        return arm_fully_connected_s8(ctx, &a->fc, &a->per_tensor, &a->input, in0, &a->filter, filter, &a->bias,
                                      bias, &a->output, out);
    case FN_MAX_POOL:
        return arm_max_pool_s8(ctx, &a->pool, &a->input, in0, &a->filter, &a->output, out);
    case FN_AVG_POOL:
        return arm_avgpool_s8(ctx, &a->pool, &a->input, in0, &a->filter, &a->output, out);
    case FN_ADD:
        return arm_elementwise_add_s8(in0, (const int8_t *)tc->arrays[1], v[0], v[1], v[2], v[3], v[4], v[5], v[6],
                                      out, v[7], v[8], v[9], v[10], v[11], v[12]);
    case FN_MUL:
        return arm_elementwise_mul_s8(in0, (const int8_t *)tc->arrays[1], v[0], v[1], out, v[2], v[3], v[4], v[5],
                                      v[6], v[7]);
    case FN_SOFTMAX:
        arm_softmax_s8(in0, v[0], v[1], v[2], v[3], v[4], out);
        return 0;
    default:
        return call_extra(tc, a, out);
    }
}

#endif /* EMC_NN_VECTORS_CORE_H */
