// Layout moves: Shuffle (transposes around a reshape), Padding (constant / reflect / edge, or
// crops) and Concatenation (each input written into its slab of the output). One thread per
// element of the iteration space; consecutive threads write consecutive outputs. See kiln.h.
#include "../common.cuh"

namespace {

struct CopyIndex {
  int rank, mid_rank, mode;
  int dims[KILN_MAX_RANK], in_dims[KILN_MAX_RANK], pre[KILN_MAX_RANK], mid_dims[KILN_MAX_RANK];
  int64_t out_strides[KILN_MAX_RANK], in_strides[KILN_MAX_RANK], mid_strides[KILN_MAX_RANK];
};

template <class E>
__global__ void copy_kernel(const E* __restrict__ x, E* __restrict__ y, int64_t total, E fill,
                            const __grid_constant__ CopyIndex ix) {
  for (int64_t o = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; o < total;
       o += (int64_t)gridDim.x * blockDim.x) {
    int rem = (int)o;
    int64_t out = 0, in = 0;
    bool inside = true;
    for (int d = ix.rank - 1; d >= 0; --d) {
      const int c = rem % ix.dims[d];
      rem /= ix.dims[d];
      out += c * ix.out_strides[d];
      if (ix.mid_rank > 0) {
        in += c * ix.in_strides[d];
        continue;
      }
      int i = c - ix.pre[d];
      const int n = ix.in_dims[d];
      if (i < 0 || i >= n) {
        if (ix.mode == KILN_PAD_CONSTANT) inside = false;
        else if (ix.mode == KILN_PAD_EDGE) i = i < 0 ? 0 : n - 1;
        else i = i < 0 ? -i : 2 * (n - 1) - i;  // reflect, the edge itself not repeated
      }
      in += i * ix.in_strides[d];
    }
    if (ix.mid_rank > 0) {
      int64_t lin = in;
      in = 0;
      for (int e = ix.mid_rank - 1; e >= 0; --e) {
        const int64_t m = lin % ix.mid_dims[e];
        lin /= ix.mid_dims[e];
        in += m * ix.mid_strides[e];
      }
    }
    y[out] = inside ? x[in] : fill;
  }
}

template <class E>
kiln_status run(const kiln_copy_params* p, const CopyIndex& ix, int64_t total, kiln_stream s) {
  const int threads = 256;
  copy_kernel<E><<<kiln::blocks_for(total, threads, (int64_t)kiln::multiprocessors(s->device) * 16),
                   threads, 0, s->stream>>>((const E*)p->x, (E*)p->y, total, (E)p->fill_bits, ix);
  return kiln::check_launch("kiln_launch_copy");
}

}  // namespace

extern "C" KILN_API kiln_status kiln_launch_copy(const kiln_copy_params* p, kiln_stream stream) {
  const char* where = "kiln_launch_copy";
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  const bool ok = p->rank >= 0 && p->rank <= KILN_MAX_RANK && p->mid_rank >= 0 &&
                  p->mid_rank <= KILN_MAX_RANK && p->x && p->y &&
                  (p->element_bytes == 1 || p->element_bytes == 2 || p->element_bytes == 4) &&
                  p->mode >= KILN_PAD_CONSTANT && p->mode <= KILN_PAD_EDGE;
  if (!ok) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: bad parameters (rank %d, mid rank %d, %d-byte elements)",
                      where, p->rank, p->mid_rank, p->element_bytes);
  }
  CopyIndex ix{};
  ix.rank = p->rank;
  ix.mid_rank = p->mid_rank;
  ix.mode = p->mode;
  int64_t total = 1;
  for (int d = 0; d < p->rank; ++d) {
    if (p->dims[d] <= 0 || (p->mid_rank == 0 && p->in_dims[d] <= 0)) {
      return kiln::fail(KILN_INVALID_ARGUMENT, "%s: bad dim %d", where, d);
    }
    total *= p->dims[d];
    ix.dims[d] = (int)p->dims[d];
    ix.in_dims[d] = (int)p->in_dims[d];
    ix.pre[d] = (int)p->pre[d];
    ix.out_strides[d] = p->out_strides[d];
    ix.in_strides[d] = p->in_strides[d];
  }
  for (int e = 0; e < p->mid_rank; ++e) {
    if (p->mid_dims[e] <= 0) return kiln::fail(KILN_INVALID_ARGUMENT, "%s: bad mid dim %d", where, e);
    ix.mid_dims[e] = (int)p->mid_dims[e];
    ix.mid_strides[e] = p->mid_strides[e];
  }
  if (total >= (1ll << 31)) {
    return kiln::fail(KILN_UNSUPPORTED, "%s: %lld elements exceed 32-bit indexing", where,
                      (long long)total);
  }
  switch (p->element_bytes) {
    case 1:
      return run<uint8_t>(p, ix, total, stream);
    case 2:
      return run<uint16_t>(p, ix, total, stream);
    default:
      return run<uint32_t>(p, ix, total, stream);
  }
}
