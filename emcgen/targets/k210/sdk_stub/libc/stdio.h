/* emcgen compile-check stub: the part of <stdio.h> generated K210 code uses (Debian's cross gcc has no libc). */
#ifndef EMC_STUB_STDIO_H
#define EMC_STUB_STDIO_H

int printf(const char *restrict format, ...) __attribute__((format(printf, 1, 2)));
int putchar(int c);

#endif
