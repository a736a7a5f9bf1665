/* Test program for the firmware skeleton. The first semihosting argument selects what it does:
 *   (none) | hello      print a greeting, return 0
 *   exit N              return N from main
 *   files N             read N bytes of in.bin, write them reversed and XOR 0x5A to out.bin, print counts
 *   missing             read a file that does not exist, print the result
 *   bench N1 N2 ...     one emc_bench_begin/end region per N, each a loop of exactly 2*N+1 instructions
 *   fault               execute an undefined instruction (HardFault)
 *   overflow            unbounded recursion (stack overflow)
 *   stack N             recurse N levels, print emc_stack_used_bytes()
 *   data                check .data initialisation and .bss zeroing, print the FPU result
 *   echo ...            print the whole semihosting command line
 *   buf                 emc_write_buf with embedded NUL bytes and more than one 64-byte chunk
 */
#include <stdint.h>
#include <string.h>

#include "cycles.h"
#include "semihost.h"

static char cmdline[256];
static uint8_t file_buf[4096];
static volatile uint32_t initialised = 0x12345678u;   /* .data */
static volatile uint32_t zeroed[16];                  /* .bss */
volatile float fpu_in = 1.5f;

static const char *next_word(const char **cursor)
{
    static char word[32];
    const char *p = *cursor;
    size_t n = 0;
    while (*p == ' ') {
        p++;
    }
    while (*p && *p != ' ' && n < sizeof word - 1) {
        word[n++] = *p++;
    }
    word[n] = '\0';
    *cursor = p;
    return word;
}

static uint32_t to_u32(const char *s)
{
    uint32_t v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10u + (uint32_t)(*s++ - '0');
    }
    return v;
}

static void counted_loop(uint32_t n)
{
    /* 1 mov + n * (subs + bne) = 2n + 1 instructions */
    __asm__ volatile("mov r0, %0\n1:\n\tsubs r0, r0, #1\n\tbne 1b" : : "r"(n) : "r0", "cc");
}

static uint32_t recurse(uint32_t depth)
{
    volatile uint8_t pad[64];
    pad[0] = (uint8_t)depth;
    if (depth == 0) {
        return pad[0];
    }
    return recurse(depth - 1) + pad[0];
}

static volatile uint32_t recursion_limit = 1000000u;   /* far deeper than any stack */

static uint32_t recurse_deep(uint32_t depth)
{
    volatile uint8_t pad[256];
    pad[depth & 255u] = 1;
    if (depth >= recursion_limit) {
        return pad[0];
    }
    return recurse_deep(depth + 1) + pad[0];
}

int main(void)
{
    const char *cursor = cmdline;
    if (emc_host_cmdline(cmdline, sizeof cmdline) < 0) {
        cmdline[0] = '\0';
    }
    next_word(&cursor);   /* argv[0]: program name */
    const char *mode = next_word(&cursor);

    if (mode[0] == '\0' || !strcmp(mode, "hello")) {
        emc_write_str("hello from emcgen firmware\n");
        return 0;
    }
    if (!strcmp(mode, "exit")) {
        return (int)to_u32(next_word(&cursor));
    }
    if (!strcmp(mode, "files")) {
        uint32_t n = to_u32(next_word(&cursor));
        int got = emc_host_read_file("in.bin", file_buf, n);
        for (int i = 0; i < got / 2; i++) {
            uint8_t t = file_buf[i];
            file_buf[i] = file_buf[got - 1 - i];
            file_buf[got - 1 - i] = t;
        }
        for (int i = 0; i < got; i++) {
            file_buf[i] ^= 0x5Au;
        }
        int put = got < 0 ? -1 : emc_host_write_file("out.bin", file_buf, (size_t)got);
        emc_write_str("read=");
        emc_write_i32(got);
        emc_write_str(" written=");
        emc_write_i32(put);
        emc_write_str("\n");
        return 0;
    }
    if (!strcmp(mode, "missing")) {
        emc_write_str("missing=");
        emc_write_i32(emc_host_read_file("does-not-exist.bin", file_buf, 16));
        emc_write_str("\n");
        return 0;
    }
    if (!strcmp(mode, "bench")) {
        for (const char *w = next_word(&cursor); w[0]; w = next_word(&cursor)) {
            uint32_t n = to_u32(w);
            emc_bench_begin();
            counted_loop(n);
            emc_write_str("cycles=");
            emc_write_u32(emc_bench_end());
            emc_write_str("\n");
        }
        return 0;
    }
    if (!strcmp(mode, "fault")) {
        __asm__ volatile("udf #7");
        return 1;
    }
    if (!strcmp(mode, "overflow")) {
        return (int)recurse_deep(0);
    }
    if (!strcmp(mode, "stack")) {
        uint32_t r = recurse(to_u32(next_word(&cursor)));
        emc_write_str("stack_used=");
        emc_write_u32(emc_stack_used_bytes());
        emc_write_str(" stack_size=");
        emc_write_u32(emc_stack_size_bytes());
        emc_write_str("\n");
        return r == 0 ? 1 : 0;
    }
    if (!strcmp(mode, "data")) {
        uint32_t sum = 0;
        for (int i = 0; i < 16; i++) {
            sum |= zeroed[i];
        }
        float f = fpu_in * 3.0f;
        emc_write_str("data=");
        emc_write_hex32(initialised);
        emc_write_str(" bss=");
        emc_write_u32(sum);
        emc_write_str(" fpu=");
        emc_write_u32((uint32_t)(f * 1000.0f));
        emc_write_str("\n");
        return 0;
    }
    if (!strcmp(mode, "echo")) {
        emc_write_str(cmdline);
        emc_write_str("\n");
        return 0;
    }
    if (!strcmp(mode, "buf")) {
        static char text[150];
        for (size_t i = 0; i < sizeof text; i++) {
            text[i] = (char)('a' + i % 26u);
        }
        text[3] = '\0';
        text[70] = '\0';
        text[71] = '\0';
        emc_write_buf(text, sizeof text);
        return 0;
    }
    emc_write_str("unknown mode\n");
    return 99;
}
