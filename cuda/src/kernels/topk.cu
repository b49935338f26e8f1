// TopK over the middle axis of [outer, len, inner], one thread block per slice.
//
// Every element becomes a 64-bit key that orders exactly as the CPU kernel ranks: the value
// mapped to an order-preserving uint32 (NaN above +inf, -0 equal to +0, complemented for `min`)
// in the high half, the complement of its index in the low half (equal values: lower index
// first). All keys of a slice differ, so the k largest keys are one well-defined answer, found
// here without atomics:
//  - k = 1: each thread keeps its best key, then a warp-shuffle and a shared-memory reduction;
//  - k > 1: a bitonic sort of the slice's keys in shared memory (padded with 0, below every
//    key); slices longer than the buffer (4096 keys) stream through it: the buffer keeps the k
//    best so far in front and refills the rest, sorting after each refill (k <= 2048).
#include "../common.cuh"

namespace {

constexpr int kBuffer = 4096;

template <class T>
__device__ __forceinline__ uint32_t order_bits(T v);

template <>
__device__ __forceinline__ uint32_t order_bits<float>(float v) {
  if (v != v) return 0xffffffffu;  // NaN: above every number
  if (v == 0.f) v = 0.f;           // -0 ranks as +0
  const uint32_t b = __float_as_uint(v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

template <>
__device__ __forceinline__ uint32_t order_bits<int32_t>(int32_t v) {
  return (uint32_t)v ^ 0x80000000u;
}

template <class T>
__device__ __forceinline__ uint64_t key_of(T v, int64_t index, bool min) {
  uint32_t o = order_bits<T>(v);
  if (min) o = ~o;
  return ((uint64_t)o << 32) | (uint64_t)(0xffffffffu - (uint32_t)index);
}

__device__ __forceinline__ int32_t index_of(uint64_t key) {
  return (int32_t)(0xffffffffu - (uint32_t)key);
}

struct Slice {
  int64_t in, out;  // offsets of element 0 of the slice in x and in the outputs
};

__device__ __forceinline__ Slice slice_of(int64_t s, int64_t inner, int len, int k) {
  const int64_t o = s / inner, i = s % inner;
  return {o * len * inner + i, o * k * inner + i};
}

template <class T>
__global__ void topk_best(const T* __restrict__ x, T* __restrict__ values,
                          int32_t* __restrict__ indices, int64_t inner, int len, bool min) {
  __shared__ uint64_t warp_best[32];
  const Slice sl = slice_of(blockIdx.x, inner, len, 1);
  uint64_t best = 0;
  for (int j = threadIdx.x; j < len; j += blockDim.x) {
    const uint64_t key = key_of<T>(x[sl.in + (int64_t)j * inner], j, min);
    best = key > best ? key : best;
  }
#pragma unroll
  for (int off = 16; off > 0; off /= 2) {
    const uint64_t o = __shfl_xor_sync(0xffffffffu, best, off);
    best = o > best ? o : best;
  }
  const int warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
  if (threadIdx.x % 32 == 0) warp_best[warp] = best;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < warps; ++w) best = warp_best[w] > best ? warp_best[w] : best;
    const int32_t j = index_of(best);
    values[sl.out] = x[sl.in + (int64_t)j * inner];
    indices[sl.out] = j;
  }
}

// Sorts buf[0, size) descending (size a power of two).
__device__ void bitonic_sort_desc(uint64_t* buf, int size) {
  for (int span = 2; span <= size; span <<= 1) {
    for (int stride = span / 2; stride > 0; stride >>= 1) {
      __syncthreads();
      for (int t = threadIdx.x; t < size / 2; t += blockDim.x) {
        const int lo = 2 * t - (t & (stride - 1)), hi = lo + stride;
        const bool desc = (lo & span) == 0;
        const uint64_t a = buf[lo], b = buf[hi];
        if ((a < b) == desc) buf[lo] = b, buf[hi] = a;
      }
    }
  }
  __syncthreads();
}

template <class T>
__global__ void topk_sort(const T* __restrict__ x, T* __restrict__ values,
                          int32_t* __restrict__ indices, int64_t inner, int len, int k, int size,
                          bool min) {
  extern __shared__ uint64_t buf[];
  const Slice sl = slice_of(blockIdx.x, inner, len, k);
  // Keys of elements [from, from + n) into buf[at, at + n), zeros after them up to `size`.
  auto fill = [&](int at, int from) {
    for (int t = at + threadIdx.x; t < size; t += blockDim.x) {
      const int j = from + (t - at);
      buf[t] = j < len ? key_of<T>(x[sl.in + (int64_t)j * inner], j, min) : 0;
    }
  };
  fill(0, 0);
  bitonic_sort_desc(buf, size);
  for (int next = size; next < len; next += size - k) {
    fill(k, next);
    bitonic_sort_desc(buf, size);
  }
  for (int t = threadIdx.x; t < k; t += blockDim.x) {
    const int32_t j = index_of(buf[t]);
    values[sl.out + (int64_t)t * inner] = x[sl.in + (int64_t)j * inner];
    indices[sl.out + (int64_t)t * inner] = j;
  }
}

int pow2_at_least(int n) {
  int p = 2;
  while (p < n) p <<= 1;
  return p;
}

template <class T>
void launch(const kiln_topk_params* p, cudaStream_t s) {
  const int64_t slices = p->outer * p->inner;
  const bool min = p->op == 1;
  const T* x = (const T*)p->x;
  T* v = (T*)p->values;
  if (p->k == 1) {
    const int threads = p->len >= 256 ? 256 : (p->len > 32 ? (p->len + 31) / 32 * 32 : 32);
    topk_best<T><<<(unsigned)slices, threads, 0, s>>>(x, v, p->indices, p->inner, p->len, min);
    return;
  }
  const int size = p->len <= kBuffer ? pow2_at_least(p->len) : kBuffer;
  const int threads = size / 2 < 512 ? size / 2 : 512;
  topk_sort<T><<<(unsigned)slices, threads < 32 ? 32 : threads, size * sizeof(uint64_t), s>>>(
      x, v, p->indices, p->inner, p->len, p->k, size, min);
}

}  // namespace

extern "C" KILN_API kiln_status kiln_launch_topk(const kiln_topk_params* p, kiln_stream stream) {
  const char* where = "kiln_launch_topk";
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  if (!p->x || !p->values || !p->indices || p->outer < 0 || p->inner < 0 || p->len <= 0 ||
      p->k <= 0 || p->k > p->len || (p->op != 0 && p->op != 1) ||
      (p->dtype != KILN_F32 && p->dtype != KILN_I32)) {
    return kiln::fail(KILN_INVALID_ARGUMENT,
                      "%s: bad parameters (len %d, k %d, op %d, dtype %d)", where, p->len, p->k,
                      p->op, p->dtype);
  }
  if (p->len > kBuffer && p->k > KILN_TOPK_MAX_CHUNKED_K) {
    return kiln::fail(KILN_UNSUPPORTED, "%s: k %d over a slice of %d (k > %d needs len <= %d)",
                      where, p->k, p->len, KILN_TOPK_MAX_CHUNKED_K, kBuffer);
  }
  const int64_t slices = p->outer * p->inner;
  if (slices == 0) return KILN_OK;
  if (slices > 0x7fffffffLL) {
    return kiln::fail(KILN_UNSUPPORTED, "%s: %lld slices exceed the grid limit", where,
                      (long long)slices);
  }
  if (p->dtype == KILN_F32) launch<float>(p, stream->stream);
  else launch<int32_t>(p, stream->stream);
  return kiln::check_launch(where);
}
