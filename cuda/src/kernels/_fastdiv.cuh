// Division by a run-time constant with a multiply and a shift (Granlund & Montgomery; the form
// CUTLASS's FastDivmod uses), for the index arithmetic of the convolution gather: an integer
// division costs some twenty instructions, this one two or three. Exact for 0 <= n < 2^31.
#pragma once

#include <stdint.h>

namespace kiln {

struct FastDiv {
  int32_t d;
  uint32_t mul;  // 0 when d == 1
  uint32_t shr;

  FastDiv() = default;
  explicit FastDiv(int32_t divisor) : d(divisor), mul(0), shr(0) {
    if (divisor <= 1) return;
    uint32_t l = 0;  // ceil(log2(divisor))
    while ((1ull << l) < (uint64_t)divisor) ++l;
    const uint32_t p = 31 + l;
    mul = (uint32_t)(((1ull << p) + (uint64_t)divisor - 1) / (uint64_t)divisor);
    shr = p - 32;
  }

  __host__ __device__ __forceinline__ int32_t div(int32_t n) const {
    if (mul == 0) return n;
#ifdef __CUDA_ARCH__
    return (int32_t)(__umulhi((uint32_t)n, mul) >> shr);
#else
    return (int32_t)((((uint64_t)(uint32_t)n * mul) >> 32) >> shr);
#endif
  }

  // Quotient and remainder in one.
  __host__ __device__ __forceinline__ int32_t divmod(int32_t n, int32_t& rem) const {
    const int32_t q = div(n);
    rem = n - q * d;
    return q;
  }
};

}  // namespace kiln
