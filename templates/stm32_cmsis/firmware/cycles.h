/* Cost and memory measurement for emcgen firmware.
 *
 * Instruction counts (QEMU): QEMU does not model the DWT cycle counter, so the QEMU runner of emcgen
 *   counts executed instructions with a TCG plugin between the entries of emc_bench_begin() and
 *   emc_bench_end(). Call the pair around each measured region (e.g. one inference). The functions are
 *   never inlined or merged, so their addresses in the ELF are the markers.
 * Cycle counts (hardware): emc_bench_begin() restarts the DWT cycle counter and emc_bench_end() returns
 *   the cycles since then; both give 0 where DWT is absent (QEMU, Cortex-M0) or was never enabled.
 * Stack: the startup code paints the free stack with EMC_STACK_PAINT; emc_stack_used_bytes() scans it.
 */
#ifndef EMC_CYCLES_H
#define EMC_CYCLES_H

#include <stdint.h>

#define EMC_STACK_PAINT 0xC5A5C5A5u

/* Enable DWT CYCCNT; returns 1 when it counts, 0 when it is absent (QEMU) or not implemented. */
int emc_cycles_init(void);
/* Current DWT cycle count, 0 when emc_cycles_init() found no counter. */
uint32_t emc_cycles_now(void);

/* Region markers: see above. emc_bench_end() returns the DWT cycles since emc_bench_begin() (or 0). */
void emc_bench_begin(void);
uint32_t emc_bench_end(void);

/* Deepest stack use since reset, in bytes (from the painted pattern), and the reserved stack size. */
uint32_t emc_stack_used_bytes(void);
uint32_t emc_stack_size_bytes(void);

#endif
