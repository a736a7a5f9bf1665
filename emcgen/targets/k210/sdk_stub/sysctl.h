/* emcgen compile-check stub: clock and interrupt control used by generated projects (not the SDK header).
 * Only the enumerators a generated project names are listed; their values are placeholders. */
#ifndef EMC_STUB_SYSCTL_H
#define EMC_STUB_SYSCTL_H

#include <stdint.h>

typedef enum
{
    SYSCTL_PLL0,
    SYSCTL_PLL1,
    SYSCTL_PLL2,
    SYSCTL_PLL_MAX
} sysctl_pll_t;

typedef enum
{
    SYSCTL_CLOCK_CPU,
    SYSCTL_CLOCK_AI,
    SYSCTL_CLOCK_MAX
} sysctl_clock_t;

/* Program a PLL; returns the frequency actually reached in Hz. */
uint32_t sysctl_pll_set_freq(sysctl_pll_t pll, uint32_t pll_freq);

/* Gate a peripheral clock on; 0 on success. */
int sysctl_clock_enable(sysctl_clock_t clock);

/* Current frequency of a clock in Hz. */
uint32_t sysctl_clock_get_freq(sysctl_clock_t clock);

/* Enable machine-mode external interrupts on the calling core. */
void sysctl_enable_irq(void);

#endif
