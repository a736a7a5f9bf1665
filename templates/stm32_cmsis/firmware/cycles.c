/* DWT cycle counter, benchmark markers and stack high-water mark. See cycles.h.
 * Register addresses are the architectural ones of ARMv7-M (same on every Cortex-M3/M4/M7). */
#include "cycles.h"

#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)        /* Debug Exception and Monitor Control */
#define DEMCR_TRCENA (1u << 24)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CTRL_CYCCNTENA (1u << 0)
#define DWT_CTRL_NOCYCCNT (1u << 25)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#define DWT_LAR (*(volatile uint32_t *)0xE0001FB0u)      /* lock access register (Cortex-M7) */
#define DWT_LAR_KEY 0xC5ACCE55u

extern uint32_t __stack_bottom[];   /* from the linker script */
extern uint32_t __stack_top[];

static int cycles_ok;
static uint32_t bench_start;

int emc_cycles_init(void)
{
    DEMCR |= DEMCR_TRCENA;
    DWT_LAR = DWT_LAR_KEY;
    DWT_CYCCNT = 0;
    DWT_CTRL |= DWT_CTRL_CYCCNTENA;
    uint32_t ctrl = DWT_CTRL;
    cycles_ok = (ctrl & DWT_CTRL_CYCCNTENA) && !(ctrl & DWT_CTRL_NOCYCCNT);
    return cycles_ok;
}

uint32_t emc_cycles_now(void)
{
    return cycles_ok ? DWT_CYCCNT : 0u;
}

/* noinline + noipa: the functions must exist, be called and keep distinct addresses (no identical-code
 * folding), because the QEMU plugin watches their first instruction. */
__attribute__((noinline, noipa)) void emc_bench_begin(void)
{
    bench_start = emc_cycles_now();
}

__attribute__((noinline, noipa)) uint32_t emc_bench_end(void)
{
    uint32_t now = emc_cycles_now();
    return cycles_ok ? now - bench_start : 0u;
}

uint32_t emc_stack_used_bytes(void)
{
    const uint32_t *p = __stack_bottom;
    while (p < __stack_top && *p == EMC_STACK_PAINT) {
        p++;
    }
    return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)p);
}

uint32_t emc_stack_size_bytes(void)
{
    return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)__stack_bottom);
}
