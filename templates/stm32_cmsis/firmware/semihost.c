/* Console, exit and host-file I/O: Arm semihosting, or retarget hooks on a board without a debugger.
 * See semihost.h for the two build modes. Semihosting operations used (numbers from the Arm semihosting
 * specification): SYS_OPEN 0x01, SYS_CLOSE 0x02, SYS_WRITEC 0x03, SYS_WRITE0 0x04, SYS_WRITE 0x05,
 * SYS_READ 0x06, SYS_SEEK 0x0A, SYS_GET_CMDLINE 0x15, SYS_EXIT 0x18, SYS_EXIT_EXTENDED 0x20. */
#include "semihost.h"

#include <string.h>

__attribute__((weak)) void emc_putchar(char c)
{
    (void)c;   /* no console until the application provides one (e.g. a UART transmit loop) */
}

__attribute__((weak, noreturn)) void emc_on_exit(int code)
{
    (void)code;
    for (;;) {
        __asm__ volatile("wfi");
    }
}

#if EMC_SEMIHOSTING

enum {
    SYS_OPEN = 0x01, SYS_CLOSE = 0x02, SYS_WRITEC = 0x03, SYS_WRITE0 = 0x04, SYS_WRITE = 0x05,
    SYS_READ = 0x06, SYS_SEEK = 0x0A, SYS_GET_CMDLINE = 0x15, SYS_EXIT = 0x18, SYS_EXIT_EXTENDED = 0x20,
};
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define OPEN_MODE_RB 1u   /* fopen mode index of "rb" */
#define OPEN_MODE_WB 5u   /* fopen mode index of "wb" */
#define OPEN_MODE_RPB 3u  /* fopen mode index of "r+b" */

/* r0 = operation, r1 = argument (usually a pointer to a parameter block); the result comes back in r0. */
static int semihost_call(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return (int)r0;
}

void emc_write_str(const char *s)
{
    semihost_call(SYS_WRITE0, s);
}

void emc_write_buf(const void *buf, size_t len)
{
    /* SYS_WRITE0 stops at NUL: send text in NUL-terminated chunks and NUL bytes one by one. */
    const char *p = buf;
    char chunk[65];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] != '\0') {
            chunk[n++] = p[i];
        }
        if (n && (p[i] == '\0' || n == sizeof chunk - 1 || i + 1 == len)) {
            chunk[n] = '\0';
            semihost_call(SYS_WRITE0, chunk);
            n = 0;
        }
        if (p[i] == '\0') {
            semihost_call(SYS_WRITEC, &p[i]);
        }
    }
}

void emc_exit(int code)
{
    uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
    semihost_call(SYS_EXIT_EXTENDED, block);
    /* Hosts without SYS_EXIT_EXTENDED: plain SYS_EXIT only says "application exit" (status 0). */
    semihost_call(SYS_EXIT, (const void *)(uintptr_t)ADP_STOPPED_APPLICATION_EXIT);
    for (;;) {
    }
}

static int host_open(const char *name, uint32_t mode)
{
    uint32_t block[3] = {(uint32_t)(uintptr_t)name, mode, (uint32_t)strlen(name)};
    return semihost_call(SYS_OPEN, block);
}

static void host_close(int handle)
{
    uint32_t block[1] = {(uint32_t)handle};
    semihost_call(SYS_CLOSE, block);
}

int emc_host_read_file(const char *name, void *buf, size_t size)
{
    int handle = host_open(name, OPEN_MODE_RB);
    if (handle < 0) {
        return -1;
    }
    uint32_t block[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)buf, (uint32_t)size};
    int not_read = semihost_call(SYS_READ, block);   /* returns the number of bytes NOT read */
    host_close(handle);
    if (not_read < 0 || (size_t)not_read > size) {
        return -1;
    }
    return (int)(size - (size_t)not_read);
}

int emc_host_write_file(const char *name, const void *buf, size_t size)
{
    int handle = host_open(name, OPEN_MODE_WB);
    if (handle < 0) {
        return -1;
    }
    uint32_t block[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)buf, (uint32_t)size};
    int not_written = semihost_call(SYS_WRITE, block);   /* returns the number of bytes NOT written */
    host_close(handle);
    if (not_written < 0 || (size_t)not_written > size) {
        return -1;
    }
    return (int)(size - (size_t)not_written);
}

static int host_transfer(int handle, uint32_t op, const void *buf, size_t size)
{
    uint32_t block[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)buf, (uint32_t)size};
    int left = semihost_call(op, block);   /* returns the number of bytes NOT transferred */
    host_close(handle);
    if (left < 0 || (size_t)left > size) {
        return -1;
    }
    return (int)(size - (size_t)left);
}

static int host_seek(int handle, size_t offset)
{
    uint32_t block[2] = {(uint32_t)handle, (uint32_t)offset};
    if (semihost_call(SYS_SEEK, block) != 0) {
        host_close(handle);
        return -1;
    }
    return 0;
}

int emc_host_read_file_at(const char *name, size_t offset, void *buf, size_t size)
{
    int handle = host_open(name, OPEN_MODE_RB);
    if (handle < 0 || host_seek(handle, offset) != 0) {
        return -1;
    }
    return host_transfer(handle, SYS_READ, buf, size);
}

int emc_host_write_file_at(const char *name, size_t offset, const void *buf, size_t size)
{
    int handle = host_open(name, OPEN_MODE_RPB);   /* existing file, no truncation */
    if (handle < 0) {
        handle = host_open(name, OPEN_MODE_WB);    /* missing: create it */
    }
    if (handle < 0 || host_seek(handle, offset) != 0) {
        return -1;
    }
    return host_transfer(handle, SYS_WRITE, buf, size);
}

int emc_host_cmdline(char *buf, size_t size)
{
    uint32_t block[2] = {(uint32_t)(uintptr_t)buf, (uint32_t)size};
    if (size == 0 || semihost_call(SYS_GET_CMDLINE, block) != 0) {
        return -1;
    }
    return (int)block[1];   /* the host writes the length it used back into the block */
}

#else /* !EMC_SEMIHOSTING: retargeted console, no host */

void emc_write_str(const char *s)
{
    while (*s) {
        emc_putchar(*s++);
    }
}

void emc_write_buf(const void *buf, size_t len)
{
    const char *p = buf;
    for (size_t i = 0; i < len; i++) {
        emc_putchar(p[i]);
    }
}

void emc_exit(int code)
{
    emc_on_exit(code);
}

int emc_host_read_file(const char *name, void *buf, size_t size)
{
    (void)name, (void)buf, (void)size;
    return -1;
}

int emc_host_write_file(const char *name, const void *buf, size_t size)
{
    (void)name, (void)buf, (void)size;
    return -1;
}

int emc_host_read_file_at(const char *name, size_t offset, void *buf, size_t size)
{
    (void)name, (void)offset, (void)buf, (void)size;
    return -1;
}

int emc_host_write_file_at(const char *name, size_t offset, const void *buf, size_t size)
{
    (void)name, (void)offset, (void)buf, (void)size;
    return -1;
}

int emc_host_cmdline(char *buf, size_t size)
{
    (void)buf, (void)size;
    return -1;
}

#endif

void emc_write_u32(uint32_t value)
{
    char digits[11];
    int i = (int)sizeof digits - 1;
    digits[i] = '\0';
    do {
        digits[--i] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value);
    emc_write_str(&digits[i]);
}

void emc_write_i32(int32_t value)
{
    if (value < 0) {
        emc_write_str("-");
        emc_write_u32(0u - (uint32_t)value);
    } else {
        emc_write_u32((uint32_t)value);
    }
}

void emc_write_hex32(uint32_t value)
{
    static const char hex[] = "0123456789abcdef";
    char text[11] = "0x";
    for (int i = 0; i < 8; i++) {
        text[2 + i] = hex[(value >> (28 - 4 * i)) & 0xFu];
    }
    text[10] = '\0';
    emc_write_str(text);
}
