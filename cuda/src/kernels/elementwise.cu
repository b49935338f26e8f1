// ElementWise: y = a op b with numpy broadcasting. Dims are first collapsed (size-1 dims dropped,
// neighbours merged where both inputs stay contiguous or stay broadcast), so most calls become a
// flat loop (16-byte vectors when nothing broadcasts) or a rank-2/3 indexed loop.
#include "../common.cuh"

namespace {

__device__ __forceinline__ float ew_apply(int op, float a, float b) {
  switch (op) {
    case KILN_EW_SUM:
      return a + b;
    case KILN_EW_PROD:
      return a * b;
    case KILN_EW_MAX:
      return (a >= b || a != a) ? a : b;  // NaN in a propagates, as on the CPU
    case KILN_EW_MIN:
      return (a <= b || a != a) ? a : b;
    case KILN_EW_SUB:
      return a - b;
    case KILN_EW_DIV:
      return a / b;
    default:
      return powf(a, b);
  }
}

struct Indexing {
  int rank;
  int dims[KILN_MAX_RANK];
  int sa[KILN_MAX_RANK];
  int sb[KILN_MAX_RANK];
};

__global__ void ew_flat4(const float4* a, const float4* b, float4* y, int64_t n4, int op) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n4;
       i += (int64_t)gridDim.x * blockDim.x) {
    const float4 u = a[i], v = b[i];
    y[i] = make_float4(ew_apply(op, u.x, v.x), ew_apply(op, u.y, v.y), ew_apply(op, u.z, v.z),
                       ew_apply(op, u.w, v.w));
  }
}

__global__ void ew_indexed(const float* a, const float* b, float* y, int64_t from, int64_t total,
                           int op, const __grid_constant__ Indexing ix) {
  for (int64_t o = from + blockIdx.x * (int64_t)blockDim.x + threadIdx.x; o < total;
       o += (int64_t)gridDim.x * blockDim.x) {
    int rem = (int)o, ia = 0, ib = 0;
    for (int d = ix.rank - 1; d >= 0; --d) {
      const int c = rem % ix.dims[d];
      rem /= ix.dims[d];
      ia += c * ix.sa[d];
      ib += c * ix.sb[d];
    }
    y[o] = ew_apply(op, a[ia], b[ib]);
  }
}

}  // namespace

extern "C" KILN_API kiln_status kiln_launch_elementwise(const kiln_elementwise_params* p,
                                                        kiln_stream stream) {
  const char* where = "kiln_launch_elementwise";
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  if (p->rank < 0 || p->rank > KILN_MAX_RANK || p->op < KILN_EW_SUM || p->op > KILN_EW_POW ||
      !p->a || !p->b || !p->y) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: bad parameters (rank %d, op %d)", where, p->rank,
                      p->op);
  }
  int64_t total = 1;
  for (int d = 0; d < p->rank; ++d) {
    if (p->out_dims[d] <= 0 || p->a_strides[d] < 0 || p->b_strides[d] < 0) {
      return kiln::fail(KILN_INVALID_ARGUMENT, "%s: bad dim %d (%lld)", where, d,
                        (long long)p->out_dims[d]);
    }
    total *= p->out_dims[d];
  }
  if (total >= (1ll << 31)) {
    return kiln::fail(KILN_UNSUPPORTED, "%s: %lld elements exceed 32-bit indexing", where,
                      (long long)total);
  }
  // Collapse: drop size-1 dims, merge a dim into the next one when both inputs continue across.
  Indexing ix{};
  for (int d = 0; d < p->rank; ++d) {
    if (p->out_dims[d] == 1) continue;
    const int dim = (int)p->out_dims[d], sa = (int)p->a_strides[d], sb = (int)p->b_strides[d];
    if (ix.rank > 0) {
      const int last = ix.rank - 1;
      if (ix.sa[last] == sa * dim && ix.sb[last] == sb * dim) {
        ix.dims[last] *= dim;
        ix.sa[last] = sa;
        ix.sb[last] = sb;
        continue;
      }
    }
    ix.dims[ix.rank] = dim;
    ix.sa[ix.rank] = sa;
    ix.sb[ix.rank] = sb;
    ix.rank++;
  }
  const int threads = 256;
  const int64_t cap = (int64_t)kiln::multiprocessors(stream->device) * 16;
  cudaStream_t s = stream->stream;
  int64_t done = 0;
  const bool flat = ix.rank <= 1 && (ix.rank == 0 || (ix.sa[0] == 1 && ix.sb[0] == 1));
  if (flat && (((uintptr_t)p->a | (uintptr_t)p->b | (uintptr_t)p->y) & 15) == 0) {
    const int64_t n4 = total / 4;
    if (n4 > 0) {
      ew_flat4<<<kiln::blocks_for(n4, threads, cap), threads, 0, s>>>(
          (const float4*)p->a, (const float4*)p->b, (float4*)p->y, n4, p->op);
      KILN_TRY(kiln::check_launch(where));
    }
    done = n4 * 4;
  }
  if (done < total) {
    if (ix.rank == 0) {  // a single element
      ix.rank = 1;
      ix.dims[0] = 1;
    }
    ew_indexed<<<kiln::blocks_for(total - done, threads, cap), threads, 0, s>>>(
        p->a, p->b, p->y, done, total, p->op, ix);
    KILN_TRY(kiln::check_launch(where));
  }
  return KILN_OK;
}
