/* emcgen compile-check stub: the part of <math.h> generated K210 code uses. */
#ifndef EMC_STUB_MATH_H
#define EMC_STUB_MATH_H

float expf(float x);
float fabsf(float x);
#define isnan(x) __builtin_isnan(x)
#define INFINITY (__builtin_inff())

#endif
