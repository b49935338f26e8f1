// Shared pieces of the tactic files (conv_tactics.cu, fc_tactics.cu, vendor_tactics.cu): the
// extra GEMM tile shapes they offer and the entry points into the optional vendor libraries.
#pragma once

#include "../common.cuh"
#include "_gemm.cuh"

namespace kiln {

// Larger micro-tiles than _gemm.cuh's: 8 FMAs per shared-memory float on the long side, for
// the big GEMMs where the default tiles are bound by shared-memory bandwidth. All 256 threads.
using TacticTile128x128 = Tile<128, 128, 8, 8, 8>;
using TacticTile128x64 = Tile<128, 64, 8, 8, 4>;
using TacticTile64x128 = Tile<64, 128, 8, 4, 8>;
// Tactic tile index: 0 128x128, 1 128x64, 2 64x128, 3 64x64, 4 32x32.
constexpr int kTacticTileCount = 5;

// cuDNN (vendor_tactics.cu): KILN_UNSUPPORTED when the library is not loaded or refuses the
// algorithm for this problem.
kiln_status cudnn_convolution_workspace(const kiln_convolution_params* p, int algo, int device,
                                        uint64_t* bytes);
kiln_status cudnn_convolution(const kiln_convolution_params* p, int algo, kiln_stream stream);
// cuBLASLt: `algo` is one of kiln_cublaslt_fc_algorithms' 8-word algorithms.
kiln_status cublaslt_fc_workspace(const kiln_fully_connected_params* p, const uint64_t* algo,
                                  int device, uint64_t* bytes);
kiln_status cublaslt_fc(const kiln_fully_connected_params* p, const uint64_t* algo,
                        kiln_stream stream);

}  // namespace kiln
