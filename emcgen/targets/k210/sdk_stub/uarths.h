/* emcgen compile-check stub: the high-speed UART that printf writes to (not the SDK header). */
#ifndef EMC_STUB_UARTHS_H
#define EMC_STUB_UARTHS_H

/* (Re)initialise UARTHS at 115200 baud for the current CPU clock. */
void uarths_init(void);

#endif
