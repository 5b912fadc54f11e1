/* Shim: the BPF target has no <asm/byteorder.h>; pick by the compiler's byte order. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#include <linux/byteorder/little_endian.h>
#else
#include <linux/byteorder/big_endian.h>
#endif
