/* emcgen compile-check stub: RISC-V CSR access (not the SDK header).
 * read_cycle() evaluates to the machine cycle counter (mcycle) as an unsigned long. */
#ifndef EMC_STUB_ENCODING_H
#define EMC_STUB_ENCODING_H

#define read_cycle() \
    ({ unsigned long emc_stub_cycles_; __asm__ volatile("csrr %0, mcycle" : "=r"(emc_stub_cycles_)); emc_stub_cycles_; })

#endif
