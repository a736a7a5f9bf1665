/*
 * Test harness: runs emc_nn's arm_* functions on the CMSIS-NN golden vectors.
 *
 * (and the emc_nn_extra.h functions on vectors checked against the TFLM interpreter).
 *
 * Usage: emc_nn_vectors <cases.bin> <results.bin>
 * cases.bin is written by tests/stm32/harness/emc_nn_cases.py: per case
 *     int32 function id, int32 n_ints, int32 ints[n_ints], int32 n_arrays, { int32 nbytes, bytes }[n_arrays]
 * (little-endian). results.bin gets per case
 *     int32 return value, int32 scratch bytes asked for, int32 flags, int32 nbytes, bytes (the output).
 * Every buffer is malloc'ed at its exact size, so AddressSanitizer sees any access past it. Each case runs
 * twice, with different garbage in the output and scratch buffers: flag 1 = the two outputs differ (a byte
 * not written, or scratch read before written), flag 2 = an input array was modified.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
    void *arrays[MAX_ARRAYS];
    int32_t sizes[MAX_ARRAYS];
} test_case;

static void die(const char *what)
{
    fprintf(stderr, "emc_nn_vectors: %s\n", what);
    exit(2);
}

static int read_i32(FILE *f, int32_t *v)
{
    return fread(v, sizeof *v, 1, f) == 1;
}

static void write_i32(FILE *f, int32_t v)
{
    if (fwrite(&v, sizeof v, 1, f) != 1)
    {
        die("write failed");
    }
}

static void *exact_alloc(int32_t nbytes)
{
    /* malloc(0) may return NULL; keep a real allocation so pointers are never NULL by accident. */
    void *p = malloc(nbytes > 0 ? (size_t)nbytes : 1u);
    if (p == NULL)
    {
        die("out of memory");
    }
    return p;
}

static int read_case(FILE *f, test_case *tc)
{
    if (!read_i32(f, &tc->fn))
    {
        return 0;
    }
    if (!read_i32(f, &tc->n_ints) || tc->n_ints < 0 || tc->n_ints > MAX_INTS)
    {
        die("bad n_ints");
    }
    for (int32_t i = 0; i < tc->n_ints; i++)
    {
        if (!read_i32(f, &tc->ints[i]))
        {
            die("short ints");
        }
    }
    if (!read_i32(f, &tc->n_arrays) || tc->n_arrays < 0 || tc->n_arrays > MAX_ARRAYS)
    {
        die("bad n_arrays");
    }
    for (int32_t i = 0; i < tc->n_arrays; i++)
    {
        if (!read_i32(f, &tc->sizes[i]) || tc->sizes[i] < 0)
        {
            die("bad array size");
        }
        tc->arrays[i] = exact_alloc(tc->sizes[i]);
        if (tc->sizes[i] > 0 && fread(tc->arrays[i], 1, (size_t)tc->sizes[i], f) != (size_t)tc->sizes[i])
        {
            die("short array");
        }
    }
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
        die("unknown function id");
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
        die("unknown function id");
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

int main(int argc, char **argv)
{
    if (argc != 3)
    {
        die("usage: emc_nn_vectors <cases.bin> <results.bin>");
    }
    FILE *in = fopen(argv[1], "rb");
    FILE *res = fopen(argv[2], "wb");
    if (in == NULL || res == NULL)
    {
        die("cannot open files");
    }
    test_case tc;
    while (read_case(in, &tc))
    {
        call_args a;
        decode(&tc, &a);
        const int32_t scratch_bytes = a.scratch_bytes;
        void *scratch = scratch_bytes > 0 ? exact_alloc(scratch_bytes) : NULL;
        cmsis_nn_context ctx;
        ctx.buf = scratch;
        ctx.size = scratch_bytes;

        void *saved[MAX_ARRAYS];
        for (int32_t i = 0; i < tc.n_arrays; i++)
        {
            saved[i] = exact_alloc(tc.sizes[i]);
            memcpy(saved[i], tc.arrays[i], (size_t)tc.sizes[i]);
        }
        int8_t *out1 = (int8_t *)exact_alloc(a.out_bytes);
        int8_t *out2 = (int8_t *)exact_alloc(a.out_bytes);
        memset(out1, 0x5A, (size_t)a.out_bytes);
        memset(out2, 0xA5, (size_t)a.out_bytes);
        if (scratch != NULL)
        {
            memset(scratch, 0x5A, (size_t)scratch_bytes);
        }
        const int32_t ret1 = call(&tc, &a, &ctx, out1);
        if (scratch != NULL)
        {
            memset(scratch, 0xA5, (size_t)scratch_bytes);
        }
        const int32_t ret2 = call(&tc, &a, &ctx, out2);

        int32_t flags = 0;
        if (ret1 != ret2 || memcmp(out1, out2, (size_t)a.out_bytes) != 0)
        {
            flags |= 1;
        }
        for (int32_t i = 0; i < tc.n_arrays; i++)
        {
            if (memcmp(saved[i], tc.arrays[i], (size_t)tc.sizes[i]) != 0)
            {
                flags |= 2;
            }
            free(saved[i]);
            free(tc.arrays[i]);
        }
        write_i32(res, ret1);
        write_i32(res, scratch_bytes);
        write_i32(res, flags);
        write_i32(res, a.out_bytes);
        if (a.out_bytes > 0 && fwrite(out1, 1, (size_t)a.out_bytes, res) != (size_t)a.out_bytes)
        {
            die("write failed");
        }
        free(out1);
        free(out2);
        free(scratch);
    }
    fclose(in);
    if (fclose(res) != 0)
    {
        die("close failed");
    }
    return 0;
}
