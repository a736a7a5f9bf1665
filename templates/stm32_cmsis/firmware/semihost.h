/* Console, exit and host-file I/O for emcgen firmware.
 *
 * EMC_SEMIHOSTING=1: everything goes through Arm semihosting (BKPT 0xAB). Use it under QEMU
 *   (-semihosting-config enable=on,target=native) or with a debugger attached. Without either, the
 *   BKPT faults or halts the chip, so never flash a semihosting build to a board that runs alone.
 * EMC_SEMIHOSTING=0 (default when the macro is not defined): text goes character by character to the weak
 *   hook emc_putchar() (does nothing until you override it, e.g. with a UART write), emc_exit() calls the
 *   weak hook emc_on_exit() (default: sleep forever), and the host-file functions return -1.
 */
#ifndef EMC_SEMIHOST_H
#define EMC_SEMIHOST_H

#include <stddef.h>
#include <stdint.h>

#ifndef EMC_SEMIHOSTING
#define EMC_SEMIHOSTING 0
#endif

/* Exit codes used by the startup code itself (main's own return values should stay below 128). */
#define EMC_EXIT_HARDFAULT 250   /* HardFault (also escalated bus/usage/memmanage faults, stack overflow) */
#define EMC_EXIT_UNEXPECTED 251  /* an exception or interrupt without a handler */

void emc_write_str(const char *s);
void emc_write_buf(const void *buf, size_t len);
void emc_write_u32(uint32_t value);     /* decimal */
void emc_write_i32(int32_t value);      /* decimal, with '-' */
void emc_write_hex32(uint32_t value);   /* "0x" and 8 hex digits */
__attribute__((noreturn)) void emc_exit(int code);

/* Whole-file transfers with the host (semihosting only; the path is relative to QEMU's working directory).
 * read: reads at most `size` bytes, returns the number read (less than size when the file is shorter)
 * write: creates or truncates the file, returns the number of bytes written
 * both return -1 when the file cannot be opened or semihosting is off. */
int emc_host_read_file(const char *name, void *buf, size_t size);
int emc_host_write_file(const char *name, const void *buf, size_t size);

/* Streaming a batch through a small RAM (semihosting only; -1 on error or when semihosting is off).
 * read_at: reads at most `size` bytes starting `offset` bytes into the file, returns the number read.
 * write_at: writes `size` bytes at byte `offset` of the file (created when missing, never truncated),
 *   returns the number written. (Not an append mode: QEMU 7.2's native semihosting drops O_APPEND.) */
int emc_host_read_file_at(const char *name, size_t offset, void *buf, size_t size);
int emc_host_write_file_at(const char *name, size_t offset, const void *buf, size_t size);

/* The semihosting command line (QEMU: -semihosting-config ...,arg=A,arg=B gives "A B") as a C string.
 * Returns its length, or -1 (no semihosting, or it does not fit in `size` bytes). */
int emc_host_cmdline(char *buf, size_t size);

/* Retarget hooks: weak, override them in your own code. */
void emc_putchar(char c);              /* used only when EMC_SEMIHOSTING=0 */
__attribute__((noreturn)) void emc_on_exit(int code);   /* used only when EMC_SEMIHOSTING=0 */

#endif
