/* emcgen compile-check stub: the KPU runtime calls a generated project makes (kmodel v3).
 * Declarations written by emcgen from the standalone SDK's documented API; not the SDK header. */
#ifndef EMC_STUB_KPU_H
#define EMC_STUB_KPU_H

#include <stddef.h>
#include <stdint.h>

#include "dmac.h"
#include "plic.h"

/* Called (from interrupt context) when the last layer of a kmodel has finished. */
typedef void (*kpu_done_callback_t)(void *userdata);

/* The runtime's per-model state. Members here are placeholders: generated code never touches them. */
typedef struct
{
    const uint8_t *stub_model;
    uint8_t *stub_main_buffer;
    kpu_done_callback_t stub_callback;
    void *stub_userdata;
} kpu_model_context_t;

/* Parse a kmodel held in `buffer` (kept alive by the caller) and malloc its main buffer; 0 on success. */
int kpu_load_kmodel(kpu_model_context_t *ctx, const uint8_t *buffer);

/* Start an inference on `src` (planar uint8 CHW); returns at once, `done_callback` signals the end. */
int kpu_run_kmodel(kpu_model_context_t *ctx, const uint8_t *src, dmac_channel_number_t dma_ch,
                   kpu_done_callback_t done_callback, void *userdata);

/* Pointer to output `index` inside the main buffer and its size in bytes; 0 on success. */
int kpu_get_output(kpu_model_context_t *ctx, uint32_t index, uint8_t **data, size_t *size);

/* Release what kpu_load_kmodel allocated. */
void kpu_model_free(kpu_model_context_t *ctx);

#endif
