// Internal helpers shared by the library's translation units: error reporting, handles, device
// selection and launch geometry. Not part of the ABI.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

#include "kiln.h"

struct kiln_stream_s {
  cudaStream_t stream;
  int device;
};

struct kiln_event_s {
  cudaEvent_t event;
  int device;
};

struct kiln_graph_s {
  cudaGraphExec_t exec;
  int device;
};

namespace kiln {

// Records this thread's error message and returns `status`.
kiln_status fail(kiln_status status, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// Records "<where>: <cudaErrorName>: <description>" and returns KILN_CUDA_ERROR_BASE + e.
kiln_status cuda_fail(cudaError_t e, const char* where);
// Makes `device` current for this thread (a no-op when it already is).
kiln_status use_device(int device, const char* where);
// Multiprocessor count of `device`, cached.
int multiprocessors(int device);

// Checks the launch just made (configuration errors, also under graph capture).
inline kiln_status check_launch(const char* where) {
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? KILN_OK : cuda_fail(e, where);
}

// Clears an error left by an earlier runtime call so check_launch reports this launch only.
inline void clear_stale_error() { (void)cudaGetLastError(); }

inline unsigned blocks_for(int64_t work, int threads, int64_t cap) {
  int64_t b = (work + threads - 1) / threads;
  if (b < 1) b = 1;
  return (unsigned)(b < cap ? b : cap);
}

}  // namespace kiln

#define KILN_TRY_CUDA(call, where)                              \
  do {                                                          \
    cudaError_t kiln_e_ = (call);                               \
    if (kiln_e_ != cudaSuccess) return kiln::cuda_fail(kiln_e_, where); \
  } while (0)

#define KILN_TRY(call)                         \
  do {                                         \
    kiln_status kiln_s_ = (call);              \
    if (kiln_s_ != KILN_OK) return kiln_s_;    \
  } while (0)

// Validates a launch's stream and parameter pointer and makes the stream's device current.
#define KILN_LAUNCH_PROLOGUE(p, stream, where)                                        \
  do {                                                                                \
    if ((p) == nullptr) return kiln::fail(KILN_INVALID_ARGUMENT, "%s: params is NULL", where); \
    if ((stream) == nullptr) return kiln::fail(KILN_INVALID_ARGUMENT, "%s: stream is NULL", where); \
    KILN_TRY(kiln::use_device((stream)->device, where));                              \
    kiln::clear_stale_error();                                                        \
  } while (0)
