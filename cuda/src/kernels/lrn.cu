// Cross-channel LRN: one thread per element; its channel window (at most 15 channels) is summed
// directly in double precision, as the CPU reference does, so no running-sum drift.
#include "../common.cuh"

namespace {

__global__ void lrn_kernel(const __grid_constant__ kiln_lrn_params p, int64_t total) {
  const int half = (p.window - 1) / 2;
  const double scale = p.alpha / p.window;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t pos = i % p.inner;
    const int64_t t = i / p.inner;
    const int ch = (int)(t % p.channels);
    const int64_t base = (t / p.channels) * p.channels * p.inner + pos;
    const int from = max(0, ch - half), to = min(p.channels - 1, ch + half);
    double sum = 0.0;
    for (int j = from; j <= to; ++j) {
      const double v = p.x[base + (int64_t)j * p.inner];
      sum += v * v;
    }
    p.y[i] = (float)((double)p.x[i] / pow(p.k + scale * sum, p.beta));
  }
}

}  // namespace

extern "C" KILN_API kiln_status kiln_launch_lrn(const kiln_lrn_params* p, kiln_stream stream) {
  const char* where = "kiln_launch_lrn";
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  if (!p->x || !p->y || p->outer <= 0 || p->channels <= 0 || p->inner <= 0 || p->window <= 0) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: bad parameters (outer %d, channels %d, inner %d, window %d)",
                      where, p->outer, p->channels, p->inner, p->window);
  }
  const int64_t total = (int64_t)p->outer * p->channels * p->inner;
  lrn_kernel<<<kiln::blocks_for(total, 256, (int64_t)kiln::multiprocessors(stream->device) * 16), 256,
               0, stream->stream>>>(*p, total);
  return kiln::check_launch(where);
}
