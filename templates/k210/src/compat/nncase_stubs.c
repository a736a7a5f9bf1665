/* Stand-ins for the SDK's C++ nncase runtime (kmodel v4 and later), linked when CMake's EMC_NNCASE_STUBS
 * is ON (the default for SDKs that have lib/nncase). kpu.c calls these only for files that are not
 * kmodel v3, which this project never loads; each refuses with -1 (or does nothing). Written by emcgen. */
#include <stddef.h>
#include <stdint.h>

#include "kpu.h"
#if defined(__has_include)
#if __has_include("nncase.h")
#include "nncase.h" /* with a real SDK: checks these definitions against its declarations */
#endif
#endif

int nncase_load_kmodel(kpu_model_context_t *ctx, const uint8_t *buffer)
{
    (void)ctx;
    (void)buffer;
    return -1;
}

int nncase_get_output(kpu_model_context_t *ctx, uint32_t index, uint8_t **data, size_t *size)
{
    (void)ctx;
    (void)index;
    (void)data;
    (void)size;
    return -1;
}

void nncase_model_free(kpu_model_context_t *ctx)
{
    (void)ctx;
}

int nncase_run_kmodel(kpu_model_context_t *ctx, const uint8_t *src, dmac_channel_number_t dma_ch,
                      kpu_done_callback_t done_callback, void *userdata)
{
    (void)ctx;
    (void)src;
    (void)dma_ch;
    (void)done_callback;
    (void)userdata;
    return -1;
}
