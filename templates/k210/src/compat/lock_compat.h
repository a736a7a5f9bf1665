/* Force-included into the SDK's iomem.c (V0.5.7 and later) when CMake's EMC_LOCK_COMPAT is ON: a C library
 * without the Kendryte toolchain's _lock_t (e.g. upstream newlib) gets the type the SDK's locks.c defines
 * and the two functions iomem.c calls. Written by emcgen. */
typedef long _lock_t;
void _lock_acquire_recursive(_lock_t *lock);
void _lock_release_recursive(_lock_t *lock);
