/* Shim: the BPF target has no arch <asm/*.h>; use the generic one. */
#include <asm-generic/types.h>
