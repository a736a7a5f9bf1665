/* emcgen compile-check stub: DMA controller names used by generated projects (not the SDK header). */
#ifndef EMC_STUB_DMAC_H
#define EMC_STUB_DMAC_H

/* The six DMA channels of the K210. */
typedef enum
{
    DMAC_CHANNEL0,
    DMAC_CHANNEL1,
    DMAC_CHANNEL2,
    DMAC_CHANNEL3,
    DMAC_CHANNEL4,
    DMAC_CHANNEL5,
    DMAC_CHANNEL_MAX
} dmac_channel_number_t;

/* Reset and enable the DMA controller. */
void dmac_init(void);

#endif
