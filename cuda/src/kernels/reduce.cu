// Reduce over a set of axes: one warp per output element. The lanes stride over the reduced
// elements (float32 accumulated in double, int32 with wrapping), then combine in a fixed
// butterfly order: deterministic, no atomics.
#include "../common.cuh"

namespace {

struct ReduceIndex {
  int kept_rank, reduced_rank, op;
  int kept_dims[KILN_MAX_RANK], reduced_dims[KILN_MAX_RANK];
  int64_t kept_strides[KILN_MAX_RANK], reduced_strides[KILN_MAX_RANK];
  int64_t reduced_count;
};

__device__ __forceinline__ int64_t offset_of(int64_t i, int rank, const int* dims,
                                             const int64_t* strides) {
  int64_t off = 0;
  for (int d = rank - 1; d >= 0; --d) {
    const int64_t c = i % dims[d];
    i /= dims[d];
    off += c * strides[d];
  }
  return off;
}

template <class Acc>
__device__ __forceinline__ Acc combine(int op, Acc a, Acc x) {
  switch (op) {
    case KILN_REDUCE_PROD: return a * x;
    case KILN_REDUCE_MAX: return (x > a || x != x) ? x : a;  // NaN propagates
    case KILN_REDUCE_MIN: return (x < a || x != x) ? x : a;
    default: return a + x;  // sum, avg
  }
}

template <class Acc>
__device__ __forceinline__ Acc identity_of(int op) {
  switch (op) {
    case KILN_REDUCE_PROD: return (Acc)1;
    case KILN_REDUCE_MAX: return sizeof(Acc) == 8 ? (Acc)-INFINITY : (Acc)INT32_MIN;
    case KILN_REDUCE_MIN: return sizeof(Acc) == 8 ? (Acc)INFINITY : (Acc)INT32_MAX;
    default: return (Acc)0;
  }
}

constexpr int kWarps = 8;

// T: element type; Acc: double for float32, uint32_t (wrapping) or int32_t (max/min) for int32.
template <class T, class Acc>
__global__ void __launch_bounds__(kWarps * 32)
    reduce_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t outputs,
                  const __grid_constant__ ReduceIndex ix) {
  const int64_t o = (int64_t)blockIdx.x * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (o >= outputs) return;
  const T* base = x + offset_of(o, ix.kept_rank, ix.kept_dims, ix.kept_strides);
  Acc acc = identity_of<Acc>(ix.op);
  for (int64_t r = lane; r < ix.reduced_count; r += 32) {
    const Acc v = (Acc)base[offset_of(r, ix.reduced_rank, ix.reduced_dims, ix.reduced_strides)];
    acc = combine<Acc>(ix.op, acc, v);
  }
#pragma unroll
  for (int off = 16; off > 0; off /= 2) {
    acc = combine<Acc>(ix.op, acc, __shfl_xor_sync(0xffffffffu, acc, off));
  }
  if (lane == 0) {
    if (ix.op == KILN_REDUCE_AVG) acc = acc / (Acc)ix.reduced_count;
    y[o] = (T)acc;
  }
}

template <class T, class Acc>
kiln_status run(const kiln_reduce_params* p, const ReduceIndex& ix, int64_t outputs, kiln_stream s) {
  const unsigned blocks = (unsigned)((outputs + kWarps - 1) / kWarps);
  reduce_kernel<T, Acc><<<blocks, kWarps * 32, 0, s->stream>>>((const T*)p->x, (T*)p->y, outputs, ix);
  return kiln::check_launch("kiln_launch_reduce");
}

}  // namespace

extern "C" KILN_API kiln_status kiln_launch_reduce(const kiln_reduce_params* p, kiln_stream stream) {
  const char* where = "kiln_launch_reduce";
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  const bool ok = p->x && p->y && p->kept_rank >= 0 && p->kept_rank <= KILN_MAX_RANK &&
                  p->reduced_rank >= 0 && p->reduced_rank <= KILN_MAX_RANK &&
                  p->op >= KILN_REDUCE_SUM && p->op <= KILN_REDUCE_AVG &&
                  (p->dtype == KILN_F32 || (p->dtype == KILN_I32 && p->op != KILN_REDUCE_AVG));
  if (!ok) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: bad parameters (op %d, dtype %d, ranks %d/%d)",
                      where, p->op, p->dtype, p->kept_rank, p->reduced_rank);
  }
  ReduceIndex ix{};
  ix.kept_rank = p->kept_rank;
  ix.reduced_rank = p->reduced_rank;
  ix.op = p->op;
  int64_t outputs = 1;
  ix.reduced_count = 1;
  for (int d = 0; d < p->kept_rank; ++d) {
    ix.kept_dims[d] = (int)p->kept_dims[d];
    ix.kept_strides[d] = p->kept_strides[d];
    outputs *= p->kept_dims[d];
  }
  for (int d = 0; d < p->reduced_rank; ++d) {
    ix.reduced_dims[d] = (int)p->reduced_dims[d];
    ix.reduced_strides[d] = p->reduced_strides[d];
    ix.reduced_count *= p->reduced_dims[d];
  }
  if (outputs <= 0 || ix.reduced_count <= 0) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: empty reduction", where);
  }
  if (p->dtype == KILN_F32) return run<float, double>(p, ix, outputs, stream);
  if (p->op == KILN_REDUCE_MAX || p->op == KILN_REDUCE_MIN) return run<int32_t, int32_t>(p, ix, outputs, stream);
  return run<int32_t, uint32_t>(p, ix, outputs, stream);
}
