// Scale: y = (x·scale + shift)^power with one coefficient per tensor, per channel or per element
// of an item. Missing coefficient arrays mean 1, 0 and 1; power 1 skips powf like the CPU.
#include "../common.cuh"

namespace {

__global__ void scale_kernel(const __grid_constant__ kiln_scale_params p) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < p.count;
       i += (int64_t)gridDim.x * blockDim.x) {
    int64_t k = 0;
    if (p.mode == KILN_SCALE_CHANNEL) k = (i / p.inner) % p.channels;
    else if (p.mode == KILN_SCALE_ELEMENTWISE) k = i % p.per_item;
    float v = p.x[i];
    if (p.scale) v *= __ldg(p.scale + k);
    if (p.shift) v += __ldg(p.shift + k);
    if (p.power) {
      const float e = __ldg(p.power + k);
      if (e != 1.f) v = powf(v, e);
    }
    p.y[i] = v;
  }
}

}  // namespace

extern "C" KILN_API kiln_status kiln_launch_scale(const kiln_scale_params* p, kiln_stream stream) {
  const char* where = "kiln_launch_scale";
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  const bool mode_ok = p->mode == KILN_SCALE_UNIFORM ||
                       (p->mode == KILN_SCALE_CHANNEL && p->inner > 0 && p->channels > 0) ||
                       (p->mode == KILN_SCALE_ELEMENTWISE && p->per_item > 0);
  if (p->count < 0 || !mode_ok || (p->count > 0 && (!p->x || !p->y))) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: bad parameters (count %lld, mode %d)", where,
                      (long long)p->count, p->mode);
  }
  if (p->count == 0) return KILN_OK;
  const int threads = 256;
  scale_kernel<<<kiln::blocks_for(p->count, threads, (int64_t)kiln::multiprocessors(stream->device) * 16),
                 threads, 0, stream->stream>>>(*p);
  return kiln::check_launch(where);
}
