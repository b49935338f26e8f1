// Gather: data [outer, axis_len, inner] → y [outer, count, inner], one contiguous run of `inner`
// elements copied per (outer, index). The run is moved in the widest unit (16, 8, 4, 2 or 1
// bytes) that its byte length and both pointers allow, one unit per thread, so that a warp
// reads and writes consecutive addresses. Any dtype: only bytes move.
#include "../common.cuh"

namespace {

template <class U>
__global__ void gather_units(const U* __restrict__ data, const int32_t* __restrict__ indices,
                             U* __restrict__ y, int32_t* error, int64_t axis_len, int64_t units,
                             int64_t count, int64_t total) {
  for (int64_t o = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; o < total;
       o += (int64_t)gridDim.x * blockDim.x) {
    const int64_t u = o % units;
    const int64_t t = o / units;
    const int64_t i = t % count, outer = t / count;
    const int32_t raw = __ldg(indices + i);
    const int64_t j = raw < 0 ? raw + axis_len : raw;
    if (j < 0 || j >= axis_len) {
      if (error && atomicCAS(error, 0, (int32_t)(i + 1)) == 0) error[1] = raw;
      y[o] = U{};
      continue;
    }
    y[o] = data[(outer * axis_len + j) * units + u];
  }
}

template <class U>
void launch(const kiln_gather_params* p, int64_t unit_bytes, int sms, cudaStream_t s) {
  const int64_t units = p->inner * p->element_bytes / unit_bytes;
  const int64_t total = p->outer * p->count * units;
  gather_units<U><<<kiln::blocks_for(total, 256, (int64_t)sms * 16), 256, 0, s>>>(
      (const U*)p->data, p->indices, (U*)p->y, p->error, p->axis_len, units, p->count, total);
}

}  // namespace

extern "C" KILN_API kiln_status kiln_launch_gather(const kiln_gather_params* p,
                                                   kiln_stream stream) {
  const char* where = "kiln_launch_gather";
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  const int eb = p->element_bytes;
  if (!p->data || !p->indices || !p->y || p->outer < 0 || p->axis_len <= 0 || p->inner < 0 ||
      p->count < 0 || (eb != 1 && eb != 2 && eb != 4)) {
    return kiln::fail(KILN_INVALID_ARGUMENT,
                      "%s: bad parameters (outer %lld, axis %lld, inner %lld, count %lld, "
                      "element bytes %d)",
                      where, (long long)p->outer, (long long)p->axis_len, (long long)p->inner,
                      (long long)p->count, eb);
  }
  if (p->outer * p->count * p->inner == 0) return KILN_OK;
  const int64_t run = p->inner * eb;
  const uintptr_t addr = (uintptr_t)p->data | (uintptr_t)p->y;
  int64_t unit = 16;
  while (unit > 1 && (run % unit != 0 || addr % unit != 0)) unit /= 2;
  const int sms = kiln::multiprocessors(stream->device);
  cudaStream_t s = stream->stream;
  switch (unit) {
    case 16:
      launch<uint4>(p, 16, sms, s);
      break;
    case 8:
      launch<uint2>(p, 8, sms, s);
      break;
    case 4:
      launch<uint32_t>(p, 4, sms, s);
      break;
    case 2:
      launch<uint16_t>(p, 2, sms, s);
      break;
    default:
      launch<uint8_t>(p, 1, sms, s);
      break;
  }
  return kiln::check_launch(where);
}
