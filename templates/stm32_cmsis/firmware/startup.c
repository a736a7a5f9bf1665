/* Reset and fault handling for emcgen firmware on Cortex-M3/M4/M7 (no vendor headers needed).
 *
 * Reset_Handler: enable the FPU, copy .data from flash, zero .bss, paint the free stack, run constructors,
 * start the DWT cycle counter (if any), call main() and exit with its return value (semihost.h: under QEMU
 * that becomes QEMU's exit status). HardFault prints CFSR/HFSR/faulting PC and exits with
 * EMC_EXIT_HARDFAULT; any other exception without a handler exits with EMC_EXIT_UNEXPECTED.
 * Addresses of the system control registers are the architectural ARMv7-M ones.
 */
#include <stdint.h>
#include <string.h>

#include "cycles.h"
#include "semihost.h"

#ifndef EMC_IRQ_COUNT
#define EMC_IRQ_COUNT 0   /* device interrupt slots after the 16 core vectors (set per MCU by firmware.cmake) */
#endif

#define SCB_VTOR (*(volatile uint32_t *)0xE000ED08u)
#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)
#define SCB_MMFAR (*(volatile uint32_t *)0xE000ED34u)
#define SCB_BFAR (*(volatile uint32_t *)0xE000ED38u)

/* Symbols defined by the linker script. */
extern uint32_t __data_load[], __data_start[], __data_end[];
extern uint32_t __bss_start[], __bss_end[];
extern uint32_t __stack_bottom[], __stack_top[];
extern void (*__init_array_start[])(void), (*__init_array_end[])(void);

int main(void);
void emc_hardfault_report(const uint32_t *frame);

void Reset_Handler(void);
void HardFault_Handler(void);
void Default_Handler(void);
/* Weak aliases: define a function with one of these names to install your own handler. */
void NMI_Handler(void) __attribute__((weak, alias("Default_Handler")));
void MemManage_Handler(void) __attribute__((weak, alias("Default_Handler")));
void BusFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void UsageFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SVC_Handler(void) __attribute__((weak, alias("Default_Handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("Default_Handler")));
void PendSV_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));

typedef void (*vector_t)(void);

__attribute__((section(".isr_vector"), used)) const vector_t emc_vector_table[16 + EMC_IRQ_COUNT] = {
    (vector_t)(uintptr_t)__stack_top,   /* initial main stack pointer */
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0, 0, 0, 0,                         /* reserved */
    SVC_Handler,
    DebugMon_Handler,
    0,                                  /* reserved */
    PendSV_Handler,
    SysTick_Handler,
#if EMC_IRQ_COUNT > 0
    [16 ... 16 + EMC_IRQ_COUNT - 1] = Default_Handler,
#endif
};

/* Fill the unused part of the stack (bottom .. current SP minus a margin for this function's callees)
 * so that emc_stack_used_bytes() can find the deepest point reached later. */
static void paint_stack(void)
{
    uintptr_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (volatile uint32_t *p = __stack_bottom; (uintptr_t)p < sp - 256u; p++) {
        *p = EMC_STACK_PAINT;
    }
}

__attribute__((noreturn)) void Reset_Handler(void)
{
    SCB_VTOR = (uint32_t)(uintptr_t)emc_vector_table;
#if defined(__ARM_FP)
    SCB_CPACR |= 0xFu << 20;   /* full access to coprocessors 10 and 11 (the FPU) */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    memcpy(__data_start, __data_load, (size_t)((uintptr_t)__data_end - (uintptr_t)__data_start));
    memset(__bss_start, 0, (size_t)((uintptr_t)__bss_end - (uintptr_t)__bss_start));
    paint_stack();
    for (void (**ctor)(void) = __init_array_start; ctor < __init_array_end; ctor++) {
        (*ctor)();
    }
    emc_cycles_init();
    emc_exit(main());
}

/* Called with the exception stack frame {r0, r1, r2, r3, r12, lr, pc, xpsr}, or with NULL when the main
 * stack had overflowed and no frame could be pushed. */
__attribute__((noreturn, used)) void emc_hardfault_report(const uint32_t *frame)
{
    emc_write_str("HardFault CFSR=");
    emc_write_hex32(SCB_CFSR);
    emc_write_str(" HFSR=");
    emc_write_hex32(SCB_HFSR);
    if (frame) {
        emc_write_str(" PC=");
        emc_write_hex32(frame[6]);
        emc_write_str(" LR=");
        emc_write_hex32(frame[5]);
    } else {
        emc_write_str(" stack overflow");
    }
    emc_write_str(" MMFAR=");
    emc_write_hex32(SCB_MMFAR);
    emc_write_str(" BFAR=");
    emc_write_hex32(SCB_BFAR);
    emc_write_str("\n");
    emc_exit(EMC_EXIT_HARDFAULT);
}

/* Pick the stack the fault frame was pushed on (EXC_RETURN bit 2). If the main stack pointer is below the
 * stack area (overflow: the stack comes first in RAM, so the frame could not be pushed), move SP back to
 * the top of the stack area so the report can run, and report without a frame. */
__attribute__((naked)) void HardFault_Handler(void)
{
    __asm__ volatile(
        "tst lr, #4\n\t"
        "bne 2f\n\t"
        "mrs r0, msp\n\t"
        "ldr r1, =__stack_bottom\n\t"
        "cmp r0, r1\n\t"
        "bhs 1f\n\t"
        "ldr r0, =__stack_top\n\t"
        "mov sp, r0\n\t"
        "movs r0, #0\n\t"
        "b 1f\n\t"
        "2:\n\t"
        "mrs r0, psp\n\t"
        "1:\n\t"
        "b emc_hardfault_report\n\t"
        ".ltorg");
}

void Default_Handler(void)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    emc_write_str("unexpected exception ");
    emc_write_u32(ipsr & 0x1FFu);
    emc_write_str("\n");
    emc_exit(EMC_EXIT_UNEXPECTED);
}
