/*
 * Host test harness: runs emc_nn's functions on test vectors (the CMSIS-NN golden vectors, and vectors
 * checked against the TFLM interpreter), written by tests/stm32/harness/emc_nn_cases.py.
 *
 * Usage: emc_nn_vectors <cases.bin> <results.bin>
 * Case format: see emc_nn_vectors_core.h. results.bin gets per case, little-endian,
 *     int32 return value, int32 scratch bytes asked for, int32 flags, int32 nbytes, bytes (the output).
 * Every buffer is malloc'ed at its exact size, so AddressSanitizer sees any access past it. Each case runs
 * twice, with different garbage in the output and scratch buffers: flag 1 = the two outputs differ (a byte
 * not written, or scratch read before written), flag 2 = an input array was modified.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void harness_fail(const char *what)
{
    fprintf(stderr, "emc_nn_vectors: %s\n", what);
    exit(2);
}

#include "emc_nn_vectors_core.h"

static void *exact_alloc(int32_t nbytes)
{
    /* malloc(0) may return NULL; keep a real allocation so pointers are never NULL by accident. */
    void *p = malloc(nbytes > 0 ? (size_t)nbytes : 1u);
    if (p == NULL)
    {
        harness_fail("out of memory");
    }
    return p;
}

static void write_i32(FILE *f, int32_t v)
{
    if (fwrite(&v, sizeof v, 1, f) != 1)
    {
        harness_fail("write failed");
    }
}

static uint8_t *read_all(const char *path, long *size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (*size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
    {
        harness_fail("cannot read the cases file");
    }
    uint8_t *data = (uint8_t *)exact_alloc((int32_t)*size);
    if (*size > 0 && fread(data, 1, (size_t)*size, f) != (size_t)*size)
    {
        harness_fail("short read");
    }
    fclose(f);
    return data;
}

int main(int argc, char **argv)
{
    if (argc != 3)
    {
        harness_fail("usage: emc_nn_vectors <cases.bin> <results.bin>");
    }
    long size = 0;
    uint8_t *data = read_all(argv[1], &size);
    FILE *res = fopen(argv[2], "wb");
    if (res == NULL)
    {
        harness_fail("cannot open the results file");
    }
    const uint8_t *pos = data;
    test_case tc;
    while (parse_case(&pos, data + size, &tc, exact_alloc))
    {
        call_args a;
        decode(&tc, &a);
        const int32_t scratch_bytes = a.scratch_bytes;
        void *scratch = scratch_bytes > 0 ? exact_alloc(scratch_bytes) : NULL;
        cmsis_nn_context ctx;
        ctx.buf = scratch;
        ctx.size = scratch_bytes;

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
        if (inputs_modified(&tc))
        {
            flags |= 2;
        }
        for (int32_t i = 0; i < tc.n_arrays; i++)
        {
            free(tc.arrays[i]);
        }
        write_i32(res, ret1);
        write_i32(res, scratch_bytes);
        write_i32(res, flags);
        write_i32(res, a.out_bytes);
        if (a.out_bytes > 0 && fwrite(out1, 1, (size_t)a.out_bytes, res) != (size_t)a.out_bytes)
        {
            harness_fail("write failed");
        }
        free(out1);
        free(out2);
        free(scratch);
    }
    free(data);
    if (fclose(res) != 0)
    {
        harness_fail("close failed");
    }
    return 0;
}
