/* emcgen compile-check stub: platform interrupt controller (not the SDK header). */
#ifndef EMC_STUB_PLIC_H
#define EMC_STUB_PLIC_H

#include "encoding.h"

/* Initialise the PLIC (the SDK's start-up code already calls it; calling it again is harmless). */
void plic_init(void);

#endif
