// Activation: y = act(x), elementwise. 16-byte loads and stores when both pointers are aligned.
#include "../common.cuh"
#include "_epilogue.cuh"

namespace {

__global__ void activation_vec4(const float4* x, float4* y, int64_t n4, int act, float alpha,
                                float beta) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n4;
       i += (int64_t)gridDim.x * blockDim.x) {
    float4 v = x[i];
    v.x = kiln::activate(v.x, act, alpha, beta);
    v.y = kiln::activate(v.y, act, alpha, beta);
    v.z = kiln::activate(v.z, act, alpha, beta);
    v.w = kiln::activate(v.w, act, alpha, beta);
    y[i] = v;
  }
}

__global__ void activation_scalar(const float* x, float* y, int64_t from, int64_t n, int act,
                                  float alpha, float beta) {
  for (int64_t i = from + blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    y[i] = kiln::activate(x[i], act, alpha, beta);
  }
}

}  // namespace

extern "C" KILN_API kiln_status kiln_launch_activation(const kiln_activation_params* p,
                                                       kiln_stream stream) {
  const char* where = "kiln_launch_activation";
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  if (p->count < 0 || (p->count > 0 && (!p->x || !p->y)) || !kiln::valid_activation(p->act)) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: bad parameters (count %lld, act %d)", where,
                      (long long)p->count, p->act);
  }
  if (p->count == 0) return KILN_OK;
  const int threads = 256;
  const int64_t cap = (int64_t)kiln::multiprocessors(stream->device) * 16;
  int64_t done = 0;
  if ((((uintptr_t)p->x | (uintptr_t)p->y) & 15) == 0) {
    int64_t n4 = p->count / 4;
    if (n4 > 0) {
      activation_vec4<<<kiln::blocks_for(n4, threads, cap), threads, 0, stream->stream>>>(
          (const float4*)p->x, (float4*)p->y, n4, p->act, p->alpha, p->beta);
      KILN_TRY(kiln::check_launch(where));
    }
    done = n4 * 4;
  }
  if (done < p->count) {
    activation_scalar<<<kiln::blocks_for(p->count - done, threads, cap), threads, 0,
                        stream->stream>>>(p->x, p->y, done, p->count, p->act, p->alpha, p->beta);
    KILN_TRY(kiln::check_launch(where));
  }
  return KILN_OK;
}
