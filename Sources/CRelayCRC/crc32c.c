#include "CRelayCRC.h"
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>

int relay_crc32c_hardware_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
}

__attribute__((target("sse4.2")))
uint32_t relay_crc32c_hardware(uint32_t crc, const void *data, size_t length) {
    const unsigned char *bytes = (const unsigned char *)data;
    uint64_t state = (uint32_t)~crc;
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, bytes, 8);
        state = _mm_crc32_u64(state, word);
        bytes += 8;
        length -= 8;
    }
    uint32_t small = (uint32_t)state;
    while (length > 0) {
        small = _mm_crc32_u8(small, *bytes);
        bytes++;
        length--;
    }
    return ~small;
}
#else
int relay_crc32c_hardware_available(void) { return 0; }

uint32_t relay_crc32c_hardware(uint32_t crc, const void *data, size_t length) {
    (void)data;
    (void)length;
    return crc;
}
#endif
