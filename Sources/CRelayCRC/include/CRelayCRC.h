#ifndef CRELAYCRC_H
#define CRELAYCRC_H

#include <stddef.h>
#include <stdint.h>

/// 1 when this CPU has the CRC-32C instruction (x86-64 SSE4.2), else 0.
int relay_crc32c_hardware_available(void);

/// CRC-32C of `length` bytes continuing from `crc` (pre/post inverted, like the Swift
/// implementation). Only call when `relay_crc32c_hardware_available()` returned 1.
uint32_t relay_crc32c_hardware(uint32_t crc, const void *data, size_t length);

#endif
