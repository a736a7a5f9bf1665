/* emcgen compile-check stub: the part of <string.h> generated K210 code uses. */
#ifndef EMC_STUB_STRING_H
#define EMC_STUB_STRING_H

#include <stddef.h>

void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

#endif
