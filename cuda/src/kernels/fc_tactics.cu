// Fully connected tactics: y[m×n] = epilogue(x[m×k] · w[n×k]ᵀ + bias) as a tiled GEMM with a
// chosen tile (the tactic tiles of _tactics.cuh) and K split, instead of the default kernel's
// cost-model choice; cuBLASLt algorithms are in vendor_tactics.cu.
#include "../common.cuh"
#include "_epilogue.cuh"
#include "_fc_gemm.cuh"
#include "_gemm.cuh"
#include "_tactics.cuh"

namespace {

template <class T>
void launch(const kiln_fully_connected_params* p, const kiln::Epilogue& ep, int splits,
            int k_chunk, cudaStream_t s) {
  dim3 grid((unsigned)((p->n + T::BN - 1) / T::BN), (unsigned)((p->m + T::BM - 1) / T::BM),
            (unsigned)splits);
  kiln::fc_tiled<T><<<grid, T::THREADS, 0, s>>>(p->x, p->w, p->y, p->m, p->n, p->k, ep,
                                         (float*)p->workspace, splits, k_chunk);
}

kiln_status plan_tactic(const kiln_fully_connected_params* p, int32_t kind, int32_t variant,
                        int32_t splits, int* k_chunk, uint64_t* workspace, const char* where) {
  if (kind != KILN_TACTIC_GEMM) {
    return kiln::fail(KILN_UNSUPPORTED, "%s: tactic kind %d is not a fully connected tactic",
                      where, kind);
  }
  if (variant < 0 || variant >= kiln::kTacticTileCount) {
    return kiln::fail(KILN_INVALID_ARGUMENT, "%s: no tile %d", where, variant);
  }
  const int64_t k_tiles = (p->k + 15) / 16;
  if (splits < 1 || splits > kiln::kMaxSplits || (splits > 1 && splits * 2 > k_tiles)) {
    return kiln::fail(KILN_UNSUPPORTED, "%s: %d splits of k %d", where, splits, p->k);
  }
  *k_chunk = (int)(((k_tiles + splits - 1) / splits) * 16);
  *workspace = splits > 1 ? (uint64_t)splits * p->m * p->n * sizeof(float) : 0;
  return KILN_OK;
}

}  // namespace

extern "C" KILN_API kiln_status kiln_tactic_fully_connected_workspace(
    const kiln_fully_connected_params* p, int32_t kind, int32_t variant, int32_t splits,
    const uint64_t* algo, int32_t device, uint64_t* bytes) {
  const char* where = "kiln_tactic_fully_connected_workspace";
  if (!p || !bytes) return kiln::fail(KILN_INVALID_ARGUMENT, "%s: NULL argument", where);
  *bytes = 0;
  KILN_TRY(kiln::validate_fully_connected(p, where));
  if (kind == KILN_TACTIC_CUBLASLT) return kiln::cublaslt_fc_workspace(p, algo, device, bytes);
  int k_chunk;
  return plan_tactic(p, kind, variant, splits, &k_chunk, bytes, where);
}

extern "C" KILN_API kiln_status kiln_tactic_fully_connected_launch(
    const kiln_fully_connected_params* p, int32_t kind, int32_t variant, int32_t splits,
    const uint64_t* algo, kiln_stream stream) {
  const char* where = "kiln_tactic_fully_connected_launch";
  if (kind == KILN_TACTIC_DEFAULT) return kiln_launch_fully_connected(p, stream);
  KILN_LAUNCH_PROLOGUE(p, stream, where);
  KILN_TRY(kiln::validate_fully_connected(p, where));
  if (kind == KILN_TACTIC_CUBLASLT) {
    // The algorithm was chosen at maxBatchSize; cuBLASLt may refuse it at another batch (status
    // 15, NOT_SUPPORTED) or want more workspace: such a batch runs the built-in kernel instead.
    uint64_t vendor_need = 0;
    if (kiln::cublaslt_fc_workspace(p, algo, stream->device, &vendor_need) != KILN_OK ||
        (vendor_need > 0 && (!p->workspace || (uint64_t)p->workspace_bytes < vendor_need))) {
      return kiln_launch_fully_connected(p, stream);
    }
    return kiln::cublaslt_fc(p, algo, stream);
  }
  int k_chunk;
  uint64_t need;
  KILN_TRY(plan_tactic(p, kind, variant, splits, &k_chunk, &need, where));
  if (need > 0 && (!p->workspace || (uint64_t)p->workspace_bytes < need)) {
    return kiln::fail(KILN_INVALID_ARGUMENT,
                      "%s: the tactic needs %llu bytes of workspace, has %lld", where,
                      (unsigned long long)need, (long long)p->workspace_bytes);
  }
  const kiln::Epilogue ep{p->bias, p->residual_mode != KILN_RESIDUAL_NONE ? p->residual : nullptr,
                          p->act, p->alpha, p->beta, p->residual_mode};
  cudaStream_t s = stream->stream;
  switch (variant) {
    case 0:
      launch<kiln::TacticTile128x128>(p, ep, splits, k_chunk, s);
      break;
    case 1:
      launch<kiln::TacticTile128x64>(p, ep, splits, k_chunk, s);
      break;
    case 2:
      launch<kiln::TacticTile64x128>(p, ep, splits, k_chunk, s);
      break;
    case 3:
      launch<kiln::Tile64x64>(p, ep, splits, k_chunk, s);
      break;
    default:
      launch<kiln::Tile32x32>(p, ep, splits, k_chunk, s);
      break;
  }
  KILN_TRY(kiln::check_launch(where));
  if (splits > 1) {
    const int sms = kiln::multiprocessors(stream->device);
    kiln::fc_reduce<<<kiln::blocks_for((int64_t)p->m * p->n, 256, (int64_t)sms * 8), 256, 0, s>>>(
        (const float*)p->workspace, p->y, p->m, p->n, splits, ep);
    KILN_TRY(kiln::check_launch(where));
  }
  return KILN_OK;
}
