// The copies that end one step of a device-side generation loop (ExecutionContext.executeLoop,
// runtime/cuda/_loop.ts): outputs fed back into inputs and outputs collected at the step's offset
// of a device buffer, all in one launch. The step number lives in device memory (counter[0]), so
// one captured graph of a step serves every step: the launch's last block to finish advances it
// (counter[1] counts finished blocks; fences order the copies and the count).
#include "../common.cuh"

namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 132;

struct Copies {
  const char* src[KILN_MAX_LOOP_COPIES];
  char* dst[KILN_MAX_LOOP_COPIES];
  int64_t bytes[KILN_MAX_LOOP_COPIES];
  int64_t stride[KILN_MAX_LOOP_COPIES];
};

__global__ void __launch_bounds__(kThreads)
    loop_copies(const Copies c, int count, int32_t* counter) {
  const int64_t step = *reinterpret_cast<volatile int32_t*>(counter);
  const int64_t tid = blockIdx.x * (int64_t)kThreads + threadIdx.x;
  const int64_t threads = (int64_t)gridDim.x * kThreads;
  for (int k = 0; k < count; ++k) {
    const char* src = c.src[k];
    char* dst = c.dst[k] + step * c.stride[k];
    const int64_t n = c.bytes[k];
    if ((((uintptr_t)src | (uintptr_t)dst | (uintptr_t)n) & 15) == 0) {
      const uint4* s4 = reinterpret_cast<const uint4*>(src);
      uint4* d4 = reinterpret_cast<uint4*>(dst);
      for (int64_t i = tid; i < n / 16; i += threads) d4[i] = s4[i];
    } else {
      for (int64_t i = tid; i < n; i += threads) dst[i] = src[i];
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    if (atomicAdd(counter + 1, 1) == (int)gridDim.x - 1) {
      counter[1] = 0;
      counter[0] = (int32_t)(step + 1);
      __threadfence();
    }
  }
}

}  // namespace

extern "C" KILN_API kiln_status kiln_launch_loop_copies(const kiln_loop_copies_params* p,
                                                        kiln_stream stream) {
  const char* where = "kiln_launch_loop_copies";
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  if (!p->counter || p->count < 0 || p->count > KILN_MAX_LOOP_COPIES || (p->count && !p->copies)) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: bad parameters (count %d, counter %p)", where,
                      p->count, (void*)p->counter);
  }
  // The table travels as a kernel parameter (copied at launch, and at capture into a graph).
  static_assert(sizeof(Copies) <= 4000, "kernel parameter space");
  Copies c{};
  int64_t most = 0;
  for (int k = 0; k < p->count; ++k) {
    const kiln_loop_copy& e = p->copies[k];
    if (!e.src || !e.dst || e.bytes < 0 || e.dst_step_bytes < 0) {
      return kiln::fail(KILN_INVALID_ARGUMENT, "%s: copy %d is malformed", where, k);
    }
    c.src[k] = static_cast<const char*>(e.src);
    c.dst[k] = static_cast<char*>(e.dst);
    c.bytes[k] = e.bytes;
    c.stride[k] = e.dst_step_bytes;
    most = e.bytes > most ? e.bytes : most;
  }
  const unsigned blocks = kiln::blocks_for(most / 16 + 1, kThreads, kMaxBlocks);
  loop_copies<<<blocks, kThreads, 0, stream->stream>>>(c, p->count, p->counter);
  return kiln::check_launch(where);
}
