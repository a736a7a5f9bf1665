/*
 * Firmware test harness: runs emc_nn's functions on a batch of test vectors on a Cortex-M under QEMU.
 *
 * Reads cases.bin (format: emc_nn_vectors_core.h) from the host through semihosting, runs every case once
 * between emc_bench_begin()/emc_bench_end() (QEMU's plugin counts the instructions of each call) and writes
 * results.bin in the host harness's format: int32 return value, int32 scratch bytes, int32 flags,
 * int32 nbytes, output bytes. flags: 2 = an input array was modified, 4 = bytes past the output or the
 * scratch buffer were overwritten (64 guard bytes each). Exit code 0, or 1..9 for a harness problem.
 * The buffer capacities come from the build (-DEMC_CASES_CAP=... etc.); emc_nn_cases.py packs the batches.
 */
#include <stdint.h>
#include <string.h>

#include "cycles.h"
#include "semihost.h"

__attribute__((noreturn)) static void harness_fail(const char *what)
{
    emc_write_str("emc_nn_fw_vectors: ");
    emc_write_str(what);
    emc_write_str("\n");
    emc_exit(3);
}

#include "emc_nn_vectors_core.h"

#ifndef EMC_CASES_CAP
#define EMC_CASES_CAP (48 * 1024)
#endif
#ifndef EMC_POOL_CAP
#define EMC_POOL_CAP (40 * 1024)
#endif
#ifndef EMC_RESULTS_CAP
#define EMC_RESULTS_CAP (24 * 1024)
#endif
#define GUARD_BYTES 64
#define GUARD 0xA5u

static uint8_t cases[EMC_CASES_CAP];
static uint32_t pool_words[EMC_POOL_CAP / 4]; /* word-aligned bump allocator, reset for every case */
static uint8_t results[EMC_RESULTS_CAP];
static int32_t pool_used;

static void *pool_alloc(int32_t nbytes)
{
    const int32_t rounded = (nbytes + 3) & ~3;
    if (rounded > EMC_POOL_CAP - pool_used)
    {
        harness_fail("pool too small for this case");
    }
    void *p = (uint8_t *)pool_words + pool_used;
    pool_used += rounded;
    return p;
}

static uint8_t *guarded_alloc(int32_t nbytes)
{
    uint8_t *p = (uint8_t *)pool_alloc(nbytes + GUARD_BYTES);
    memset(p + nbytes, (int)GUARD, GUARD_BYTES);
    return p;
}

static int guard_intact(const uint8_t *p, int32_t nbytes)
{
    for (int32_t i = 0; i < GUARD_BYTES; i++)
    {
        if (p[nbytes + i] != GUARD)
        {
            return 0;
        }
    }
    return 1;
}

static uint8_t *put_i32(uint8_t *out, int32_t v)
{
    if (out + 4 > results + EMC_RESULTS_CAP)
    {
        harness_fail("results buffer too small");
    }
    memcpy(out, &v, 4);
    return out + 4;
}

int main(void)
{
    const int size = emc_host_read_file("cases.bin", cases, sizeof cases);
    if (size < 0 || size == (int)sizeof cases)
    {
        harness_fail("cannot read cases.bin, or it does not fit");
    }
    const uint8_t *pos = cases;
    uint8_t *out = results;
    test_case tc;
    for (;;)
    {
        pool_used = 0;
        if (!parse_case(&pos, cases + size, &tc, pool_alloc))
        {
            break;
        }
        call_args a;
        decode(&tc, &a);
        uint8_t *scratch = a.scratch_bytes > 0 ? guarded_alloc(a.scratch_bytes) : NULL;
        uint8_t *output = guarded_alloc(a.out_bytes);
        memset(output, 0x5A, (size_t)a.out_bytes);
        cmsis_nn_context ctx;
        ctx.buf = scratch;
        ctx.size = a.scratch_bytes;

        emc_bench_begin();
        const int32_t ret = call(&tc, &a, &ctx, (int8_t *)output);
        emc_bench_end();

        int32_t flags = inputs_modified(&tc) ? 2 : 0;
        if (!guard_intact(output, a.out_bytes) || (scratch != NULL && !guard_intact(scratch, a.scratch_bytes)))
        {
            flags |= 4;
        }
        out = put_i32(out, ret);
        out = put_i32(out, a.scratch_bytes);
        out = put_i32(out, flags);
        out = put_i32(out, a.out_bytes);
        if (a.out_bytes > results + EMC_RESULTS_CAP - out)
        {
            harness_fail("results buffer too small");
        }
        memcpy(out, output, (size_t)a.out_bytes);
        out += a.out_bytes;
    }
    const int32_t total = (int32_t)(out - results);
    if (emc_host_write_file("results.bin", results, (size_t)total) != total)
    {
        harness_fail("cannot write results.bin");
    }
    return 0;
}
