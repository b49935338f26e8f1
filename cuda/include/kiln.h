/*
 * kiln.h — the C ABI of Kiln's native library (libkiln.so), the only interface between
 * TypeScript (ffi/symbols.ts mirrors it) and CUDA.
 *
 * Rules:
 *  - Every function is extern "C", prefixed kiln_, and returns a kiln_status (0 = ok), except the
 *    four self-description functions kiln_abi_version, kiln_last_error, kiln_status_string and
 *    kiln_abi_layout's out-parameter.
 *  - On failure kiln_last_error() gives this thread's last message, naming the function and, for
 *    CUDA failures, the CUDA error name. A status >= KILN_CUDA_ERROR_BASE carries the cudaError_t
 *    (status - KILN_CUDA_ERROR_BASE), so a call made on another thread (Deno's nonblocking calls)
 *    can still be explained with kiln_status_string.
 *  - Handles are opaque. Parameter structs are passed by pointer; their layout is checked from
 *    TypeScript through kiln_abi_layout (sizes, field counts and offsets).
 *  - The library loads with no GPU and no CUDA runtime installed (the runtime is linked
 *    statically); kiln_device_count then reports 0.
 *
 * Adding a layer kind: its parameter struct and kiln_launch_<op> below, a KILN_STRUCT_* id, its
 * fields in src/abi.cu, the kernel in src/kernels/<op>.cu, its lines in ffi/symbols.ts and
 * ffi/structs.ts, and one entry in runtime/cuda/kernels.ts.
 */
#ifndef KILN_H
#define KILN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a signature, a struct layout or an enum value changes. */
#define KILN_ABI_VERSION 2

#if defined(__GNUC__)
#define KILN_API __attribute__((visibility("default")))
#else
#define KILN_API
#endif

typedef int32_t kiln_status;

enum {
  KILN_OK = 0,
  KILN_INVALID_ARGUMENT = 1,
  KILN_NO_DEVICE = 2,
  KILN_HOST_OUT_OF_MEMORY = 3,
  KILN_INTERNAL = 4,
  KILN_UNSUPPORTED = 5,
  /* KILN_CUDA_ERROR_BASE + cudaError_t */
  KILN_CUDA_ERROR_BASE = 1000
};

/* Opaque handles. Each remembers its device. */
typedef struct kiln_stream_s* kiln_stream;
typedef struct kiln_event_s* kiln_event;
typedef struct kiln_graph_s* kiln_graph;
typedef struct kiln_gate_s* kiln_gate;

/* Element types (as dsl/ir/dtype.ts). */
enum { KILN_F32 = 0, KILN_F16 = 1, KILN_I8 = 2, KILN_I32 = 3 };

/* Activations (dsl/layers/_epilogue.ts, TensorRT's alpha/beta conventions). 0 = none. */
enum {
  KILN_ACT_NONE = 0,
  KILN_ACT_RELU = 1,
  KILN_ACT_SIGMOID = 2,
  KILN_ACT_TANH = 3,
  KILN_ACT_LEAKY_RELU = 4,
  KILN_ACT_ELU = 5,
  KILN_ACT_SELU = 6,
  KILN_ACT_SOFTSIGN = 7,
  KILN_ACT_SOFTPLUS = 8,
  KILN_ACT_CLIP = 9,
  KILN_ACT_HARD_SIGMOID = 10,
  KILN_ACT_SCALED_TANH = 11,
  KILN_ACT_THRESHOLDED_RELU = 12
};

/* Fused epilogue residual: y = act(acc + bias [+ r if PRE]) [+ r if POST]. */
enum { KILN_RESIDUAL_NONE = 0, KILN_RESIDUAL_PRE = 1, KILN_RESIDUAL_POST = 2 };

enum {
  KILN_EW_SUM = 0,
  KILN_EW_PROD = 1,
  KILN_EW_MAX = 2,
  KILN_EW_MIN = 3,
  KILN_EW_SUB = 4,
  KILN_EW_DIV = 5,
  KILN_EW_POW = 6
};

enum { KILN_POOL_MAX = 0, KILN_POOL_AVERAGE = 1 };
enum { KILN_PAD_CONSTANT = 0, KILN_PAD_REFLECT = 1, KILN_PAD_EDGE = 2 };
enum { KILN_REDUCE_SUM = 0, KILN_REDUCE_PROD = 1, KILN_REDUCE_MAX = 2, KILN_REDUCE_MIN = 3, KILN_REDUCE_AVG = 4 };

/* Unary ops, in dsl/layers/unary.ts's order. float32 takes all but NOT; int32 ABS, NEG, SIGN, NOT. */
enum {
  KILN_UNARY_EXP = 0, KILN_UNARY_LOG, KILN_UNARY_SQRT, KILN_UNARY_RECIP, KILN_UNARY_ABS,
  KILN_UNARY_NEG, KILN_UNARY_SIN, KILN_UNARY_COS, KILN_UNARY_TAN, KILN_UNARY_SINH,
  KILN_UNARY_COSH, KILN_UNARY_ASIN, KILN_UNARY_ACOS, KILN_UNARY_ATAN, KILN_UNARY_ASINH,
  KILN_UNARY_ACOSH, KILN_UNARY_ATANH, KILN_UNARY_CEIL, KILN_UNARY_FLOOR, KILN_UNARY_ROUND,
  KILN_UNARY_ERF, KILN_UNARY_SIGN, KILN_UNARY_NOT
};
enum { KILN_SCALE_UNIFORM = 0, KILN_SCALE_CHANNEL = 1, KILN_SCALE_ELEMENTWISE = 2 };

#define KILN_MAX_RANK 8

/* ---- Structs (ids for kiln_abi_layout) ---- */
enum {
  KILN_STRUCT_DEVICE_PROPS = 1,
  KILN_STRUCT_ACTIVATION = 2,
  KILN_STRUCT_CONVOLUTION = 3,
  KILN_STRUCT_FULLY_CONNECTED = 4,
  KILN_STRUCT_POOLING = 5,
  KILN_STRUCT_SOFTMAX = 6,
  KILN_STRUCT_ELEMENTWISE = 7,
  KILN_STRUCT_SCALE = 8,
  KILN_STRUCT_IDENTITY = 9,
  KILN_STRUCT_COPY = 10,
  KILN_STRUCT_UNARY = 11,
  KILN_STRUCT_REDUCE = 12,
  KILN_STRUCT_LRN = 13,
  /* 20..: MatrixMultiply, Gather, TopK, Deconvolution, RaggedSoftMax (14..19 left to RNNv2). */
  KILN_STRUCT_MATRIX_MULTIPLY = 20,
  KILN_STRUCT_GATHER = 21,
  KILN_STRUCT_TOPK = 22,
  KILN_STRUCT_DECONVOLUTION = 23,
  KILN_STRUCT_RAGGED_SOFTMAX = 24
};
enum { KILN_STRUCT_RNN_V2 = 14, KILN_STRUCT_LOOP_COPIES = 15 };

typedef struct kiln_device_props {
  char name[256];
  int32_t major;
  int32_t minor;
  int32_t multiprocessors;
  int32_t max_threads_per_multiprocessor;
  uint64_t total_memory;
  int32_t l2_cache_bytes;
  int32_t shared_memory_per_block_optin;
  int32_t driver_version;
  int32_t runtime_version;
  int32_t pci_bus_id;
  int32_t pci_device_id;
} kiln_device_props;

/* y[i] = act(x[i]); x == y allowed. */
typedef struct kiln_activation_params {
  const float* x;
  float* y;
  int64_t count;
  int32_t act;
  float alpha;
  float beta;
} kiln_activation_params;

/*
 * 2-D convolution, NCHW. w: [k, c/groups, kernel_h, kernel_w]; bias: [k] or NULL; residual:
 * the output's shape, or NULL when residual_mode is NONE. Output: [n, k, out_h, out_w].
 * workspace: scratch for split-K partial sums (kiln_gemm_workspace_bytes), or NULL (no split).
 */
typedef struct kiln_convolution_params {
  const float* x;
  const float* w;
  const float* bias;
  const float* residual;
  float* y;
  void* workspace;
  int64_t workspace_bytes;
  int32_t n;
  int32_t c;
  int32_t in_h;
  int32_t in_w;
  int32_t k;
  int32_t out_h;
  int32_t out_w;
  int32_t kernel_h;
  int32_t kernel_w;
  int32_t stride_h;
  int32_t stride_w;
  int32_t pad_h;
  int32_t pad_w;
  int32_t dilation_h;
  int32_t dilation_w;
  int32_t groups;
  int32_t act;
  float alpha;
  float beta;
  int32_t residual_mode;
  /* Elements from one image to the next in x and in y; 0: dense (c·in_h·in_w, k·out_h·out_w).
   * Set when x or y is a channel slice of a wider tensor (plan/views.ts); residual stays dense. */
  int64_t x_batch_stride;
  int64_t y_batch_stride;
} kiln_convolution_params;

/* y[m×n] = epilogue(x[m×k] · w[n×k]ᵀ + bias[n]); residual [m×n] or NULL; workspace as above. */
typedef struct kiln_fully_connected_params {
  const float* x;
  const float* w;
  const float* bias;
  const float* residual;
  float* y;
  void* workspace;
  int64_t workspace_bytes;
  int32_t m;
  int32_t n;
  int32_t k;
  int32_t act;
  float alpha;
  float beta;
  int32_t residual_mode;
} kiln_fully_connected_params;

/* 2-D pooling over planes (n·c) of in_h×in_w, as runtime/cpu/pooling.ts. */
typedef struct kiln_pooling_params {
  const float* x;
  float* y;
  int32_t planes;
  int32_t in_h;
  int32_t in_w;
  int32_t out_h;
  int32_t out_w;
  int32_t window_h;
  int32_t window_w;
  int32_t stride_h;
  int32_t stride_w;
  int32_t pad_h;
  int32_t pad_w;
  int32_t post_pad_h;
  int32_t post_pad_w;
  int32_t type;
  int32_t exclude_padding;
  /* With y_batch_stride != 0, planes are (image, channel) pairs of `channels` channels per image
   * and images lie y_batch_stride elements apart in y (a channel slice, plan/views.ts). */
  int32_t channels;
  int64_t y_batch_stride;
} kiln_pooling_params;

/* Softmax over the middle axis of [outer, len, inner]; log != 0 gives log-softmax. */
typedef struct kiln_softmax_params {
  const float* x;
  float* y;
  int32_t outer;
  int32_t len;
  int32_t inner;
  int32_t log;
} kiln_softmax_params;

/*
 * y = a op b over out_dims (rank <= KILN_MAX_RANK), each input read through its own strides
 * (0 along a broadcast dim). y may alias a when a's strides are y's own (the left fold).
 */
typedef struct kiln_elementwise_params {
  const float* a;
  const float* b;
  float* y;
  int32_t op;
  int32_t rank;
  int64_t out_dims[KILN_MAX_RANK];
  int64_t a_strides[KILN_MAX_RANK];
  int64_t b_strides[KILN_MAX_RANK];
} kiln_elementwise_params;

/*
 * y = (x·scale + shift)^power; each coefficient array may be NULL (1, 0, 1). The coefficient of
 * element i is 0 (uniform), (i / inner) % channels (channel), or i % per_item (elementwise).
 */
typedef struct kiln_scale_params {
  const float* x;
  float* y;
  const float* scale;
  const float* shift;
  const float* power;
  int64_t count;
  int64_t inner;
  int64_t per_item;
  int32_t mode;
  int32_t channels;
} kiln_scale_params;

/* Copy with dtype conversion (float→int rounds half to even; int8 saturates). */
typedef struct kiln_identity_params {
  const void* x;
  void* y;
  int64_t count;
  int32_t src_dtype;
  int32_t dst_dtype;
} kiln_identity_params;

/*
 * A layout move (Shuffle, Padding, Concatenation) over the iteration space `dims` (row-major,
 * rank <= KILN_MAX_RANK), elements of element_bytes (1, 2 or 4): for each coordinate c,
 *   y[sum_d c_d * out_strides[d]] = x[source(c)]
 * One stage (mid_rank == 0): source = sum_d map_d(c_d) * in_strides[d], where map_d(c) = c - pre[d]
 * brought into [0, in_dims[d]) by `mode` (KILN_PAD_CONSTANT: outside writes fill_bits).
 * Two stages (mid_rank > 0: a reshape between two transposes): L = sum_d c_d * in_strides[d] is a
 * row-major index into mid_dims, and source = sum_e m_e * mid_strides[e] over L's coordinates m.
 */
typedef struct kiln_copy_params {
  const void* x;
  void* y;
  int32_t rank;
  int32_t mid_rank;
  int32_t element_bytes;
  int32_t mode;
  int32_t fill_bits;
  int32_t reserved;
  int64_t dims[KILN_MAX_RANK];
  int64_t out_strides[KILN_MAX_RANK];
  int64_t in_strides[KILN_MAX_RANK];
  int64_t in_dims[KILN_MAX_RANK];
  int64_t pre[KILN_MAX_RANK];
  int64_t mid_dims[KILN_MAX_RANK];
  int64_t mid_strides[KILN_MAX_RANK];
} kiln_copy_params;

/* y[i] = op(x[i]) for float32 (computed in double, rounded once) or int32 (wrapping). */
typedef struct kiln_unary_params {
  const void* x;
  void* y;
  int64_t count;
  int32_t op;
  int32_t dtype;
} kiln_unary_params;

/*
 * Reduce: y[o] = op over r of x[kept(o) + reduced(r)], where o runs row-major over kept_dims
 * and r over reduced_dims, each with its input strides. float32 accumulates in double; int32
 * sum/prod wrap. max/min propagate NaN; avg divides the sum by the reduced count.
 */
typedef struct kiln_reduce_params {
  const void* x;
  void* y;
  int32_t op;
  int32_t dtype;
  int32_t kept_rank;
  int32_t reduced_rank;
  int64_t kept_dims[KILN_MAX_RANK];
  int64_t kept_strides[KILN_MAX_RANK];
  int64_t reduced_dims[KILN_MAX_RANK];
  int64_t reduced_strides[KILN_MAX_RANK];
} kiln_reduce_params;

/* Cross-channel LRN over [outer, channels, inner]: y = x / (k + alpha/window * sum x^2)^beta. */
typedef struct kiln_lrn_params {
  const float* x;
  float* y;
  int32_t outer;
  int32_t channels;
  int32_t inner;
  int32_t window;
  double alpha;
  double beta;
  double k;
} kiln_lrn_params;

/*
 * Data-dependent failures (an index or a bound out of range) cannot stop a kernel, so kernels
 * that can meet one take `error`, two int32 in device memory that the caller zeroes before the
 * launch (or NULL: not reported). The first offending element found sets error[0] to 1 + its
 * element index and error[1] to its value; the kernel writes zeros where it found it.
 */

/*
 * Batched C = op(A)·op(B): for each matrix of the leading dims batch_dims (rank batch_rank),
 * y[mat] (m×n) = epilogue(op(A[mat]) · op(B[mat]) + bias[n]); A[mat] starts at a + sum_d
 * c_d·a_strides[d] (elements; 0 along a broadcast dim), likewise B. A is stored [m×k] ([k×m]
 * when transpose_a), B [k×n] ([n×k] when transpose_b). residual: y's shape, or NULL.
 * workspace: split-K scratch (kiln_gemm_workspace_bytes), or NULL.
 */
typedef struct kiln_matrix_multiply_params {
  const float* a;
  const float* b;
  const float* bias;
  const float* residual;
  float* y;
  void* workspace;
  int64_t workspace_bytes;
  int32_t m;
  int32_t n;
  int32_t k;
  int32_t transpose_a;
  int32_t transpose_b;
  int32_t batch_rank;
  int32_t act;
  float alpha;
  float beta;
  int32_t residual_mode;
  int64_t batch_dims[KILN_MAX_RANK];
  int64_t a_strides[KILN_MAX_RANK];
  int64_t b_strides[KILN_MAX_RANK];
} kiln_matrix_multiply_params;

/*
 * Gather: data seen as [outer, axis_len, inner] elements of element_bytes (1, 2 or 4);
 * y[o, i, r] = data[o, j, r] for each of the `count` indices, j = indices[i] (+ axis_len when
 * negative). An index outside [-axis_len, axis_len) is reported through `error`.
 */
typedef struct kiln_gather_params {
  const void* data;
  const int32_t* indices;
  void* y;
  int32_t* error;
  int64_t outer;
  int64_t axis_len;
  int64_t inner;
  int64_t count;
  int32_t element_bytes;
  int32_t reserved;
} kiln_gather_params;

/*
 * TopK over the middle axis of x [outer, len, inner] (dtype KILN_F32 or KILN_I32): the k largest
 * (op 0) or smallest (op 1) values, best first, equal values by lower index first, NaN above
 * every number; values [outer, k, inner] in x's dtype, indices int32.
 */
typedef struct kiln_topk_params {
  const void* x;
  void* values;
  int32_t* indices;
  int64_t outer;
  int64_t inner;
  int32_t len;
  int32_t k;
  int32_t op;
  int32_t dtype;
} kiln_topk_params;

/* Largest k kiln_launch_topk takes for a given len (any k when len <= this value too). */
#define KILN_TOPK_MAX_CHUNKED_K 2048

/*
 * 2-D transposed convolution, NCHW. w: [c, k/groups, kernel_h, kernel_w]; output [n, k, out_h,
 * out_w]; input pixel (y, x) with tap (i, j) lands on (y·stride_h - pad_h + i·dilation_h, ...).
 * bias/residual/epilogue as convolution. Computed as a gather (no atomics).
 */
typedef struct kiln_deconvolution_params {
  const float* x;
  const float* w;
  const float* bias;
  const float* residual;
  float* y;
  int32_t n;
  int32_t c;
  int32_t in_h;
  int32_t in_w;
  int32_t k;
  int32_t out_h;
  int32_t out_w;
  int32_t kernel_h;
  int32_t kernel_w;
  int32_t stride_h;
  int32_t stride_w;
  int32_t pad_h;
  int32_t pad_w;
  int32_t dilation_h;
  int32_t dilation_w;
  int32_t groups;
  int32_t act;
  float alpha;
  float beta;
  int32_t residual_mode;
} kiln_deconvolution_params;

/*
 * RaggedSoftMax over rows of len: y = softmax of the row's first bounds[row] elements, zeros
 * after them. A bound outside [0, len] is reported through `error` (its row is zeroed).
 */
typedef struct kiln_ragged_softmax_params {
  const float* x;
  const int32_t* bounds;
  float* y;
  int32_t* error;
  int64_t rows;
  int32_t len;
  int32_t reserved;
} kiln_ragged_softmax_params;

/*
 * RNNv2 (dsl/layers/rnn_v2.ts, same semantics as runtime/cpu/rnn_v2.ts): `layers` stacked LSTM
 * (op 0, gates input, output, forget, cell), GRU (op 1, linear before reset: update, reset,
 * hidden), RNN relu (2) or tanh (3), dirs 1 or 2, over x [n, t, e]. h0/c0 [n, layers·dirs, hidden]
 * or NULL (zero); lengths int32 [n] or NULL (t), clamped to [0, t]; past its length an item keeps
 * its state and outputs zero. Outputs y [n, t, dirs·hidden], h_out and c_out (LSTM, else NULL)
 * [n, layers·dirs, hidden]. `weights` (host memory, read during the call) holds for each
 * pseudo-layer li = l·dirs + dir and gate g the pointers W [hidden × in_l], R [hidden × hidden],
 * bW, bR [hidden] at ((li·gates + g)·4 + part); W is NULL at layer 0 when skip_input (e ==
 * hidden), biases may be NULL (zero). workspace: kiln_rnn_v2_workspace_bytes bytes.
 */
enum { KILN_RNN_LSTM = 0, KILN_RNN_GRU = 1, KILN_RNN_RELU = 2, KILN_RNN_TANH = 3 };
typedef struct kiln_rnn_v2_params {
  const float* x;
  const float* h0;
  const float* c0;
  const int32_t* lengths;
  float* y;
  float* h_out;
  float* c_out;
  const float* const* weights;
  void* workspace;
  int64_t workspace_bytes;
  int32_t op;
  int32_t n;
  int32_t t;
  int32_t e;
  int32_t hidden;
  int32_t layers;
  int32_t dirs;
  int32_t skip_input;
} kiln_rnn_v2_params;

/*
 * The copies that end one step of a device-side loop (ExecutionContext.executeLoop): for each of
 * the `count` entries of `copies` (host memory, read during the call), `bytes` from src to dst +
 * step·dst_step_bytes, where step is counter[0]; then counter[0] += 1. counter: two int32 in
 * device memory, zeroed before the loop's first step.
 */
typedef struct kiln_loop_copy {
  const void* src;
  void* dst;
  int64_t bytes;
  int64_t dst_step_bytes;
} kiln_loop_copy;
typedef struct kiln_loop_copies_params {
  const kiln_loop_copy* copies;
  int32_t* counter;
  int32_t count;
  int32_t reserved;
} kiln_loop_copies_params;
#define KILN_MAX_LOOP_COPIES 64

/*
 * FusedMlp: y = stage_{stages-1}(... stage_0(x)), stage_i(v) = act_i(v[m×k_i] · w_i[n_i×k_i]ᵀ +
 * bias_i[n_i]) with k_0 = k and k_i = n_{i-1}; bias_i may be NULL. m ≤ 2 rows on sm_90 run as
 * chained GEMV kernels with programmatic dependent launch, more rows as one GEMM per stage
 * (src/kernels/fused_mlp.cu; a one-kernel thread-block-cluster path exists for m ≤ 8). The
 * intermediates live in `workspace`: 2 × (m · widest hidden n · 4 bytes, rounded up to 256),
 * then the rest as split-K scratch (kiln_gemm_workspace_bytes).
 */
#define KILN_MLP_MAX_STAGES 8
enum { KILN_STRUCT_FUSED_MLP = 30, KILN_STRUCT_FUSED_ELEMENTWISE = 31 };
typedef struct kiln_fused_mlp_params {
  const float* x;
  float* y;
  void* workspace;
  int64_t workspace_bytes;
  const float* w[KILN_MLP_MAX_STAGES];
  const float* bias[KILN_MLP_MAX_STAGES];
  int32_t m;
  int32_t k;
  int32_t stages;
  int32_t reserved;
  int32_t n[KILN_MLP_MAX_STAGES];
  int32_t act[KILN_MLP_MAX_STAGES];
  float alpha[KILN_MLP_MAX_STAGES];
  float beta[KILN_MLP_MAX_STAGES];
} kiln_fused_mlp_params;

/*
 * FusedElementwise: for each of the `count` elements, v = x[i], then each step in turn:
 * UNARY v = fn(v) (KILN_UNARY_*, float), ACTIVATION v = act(v) (KILN_ACT_*, alpha, beta),
 * BINARY v = v fn o, BINARY_REVERSED v = o fn v (KILN_EW_*), where o = operand[j][(i /
 * operand_inner[j]) % operand_count[j]] for j = step_operand; then y[i] = v.
 */
#define KILN_FUSED_MAX_STEPS 16
#define KILN_FUSED_MAX_OPERANDS 8
enum {
  KILN_FUSED_STEP_UNARY = 0,
  KILN_FUSED_STEP_ACTIVATION = 1,
  KILN_FUSED_STEP_BINARY = 2,
  KILN_FUSED_STEP_BINARY_REVERSED = 3
};
typedef struct kiln_fused_elementwise_params {
  const float* x;
  float* y;
  int64_t count;
  const float* operand[KILN_FUSED_MAX_OPERANDS];
  int64_t operand_inner[KILN_FUSED_MAX_OPERANDS];
  int64_t operand_count[KILN_FUSED_MAX_OPERANDS];
  int32_t steps;
  int32_t operands;
  int32_t step_kind[KILN_FUSED_MAX_STEPS];
  int32_t step_fn[KILN_FUSED_MAX_STEPS];
  int32_t step_operand[KILN_FUSED_MAX_STEPS];
  float alpha[KILN_FUSED_MAX_STEPS];
  float beta[KILN_FUSED_MAX_STEPS];
} kiln_fused_elementwise_params;

/* ---- Self-description ---- */
KILN_API int32_t kiln_abi_version(void);
/* This thread's last error message ("" when none). Valid until this thread's next kiln_ call. */
KILN_API const char* kiln_last_error(void);
/* A static description of a status: "cudaErrorIllegalAddress: an illegal memory access ...". */
KILN_API const char* kiln_status_string(kiln_status status);
/*
 * Layout of struct `struct_id`: field == -1 gives its size, -2 its field count, i >= 0 the byte
 * offset of field i in declaration order.
 */
KILN_API kiln_status kiln_abi_layout(int32_t struct_id, int32_t field, int64_t* out);

/* ---- Devices ---- */
/* 0 (and KILN_OK) when there is no GPU or no driver. */
KILN_API kiln_status kiln_device_count(int32_t* count);
KILN_API kiln_status kiln_device_props_get(int32_t device, kiln_device_props* out);
KILN_API kiln_status kiln_mem_get_info(int32_t device, uint64_t* free_bytes, uint64_t* total_bytes);
KILN_API kiln_status kiln_device_synchronize(int32_t device);
/* Scratch bytes a context should own for the GEMM-based kernels' split-K on `device`. */
KILN_API kiln_status kiln_gemm_workspace_bytes(int32_t device, uint64_t* bytes);

/* ---- Memory ---- */
KILN_API kiln_status kiln_malloc(int32_t device, uint64_t bytes, void** out);
KILN_API kiln_status kiln_free(void* ptr);
/* Page-locked host memory, usable by every device. */
KILN_API kiln_status kiln_host_alloc(uint64_t bytes, void** out);
KILN_API kiln_status kiln_host_free(void* ptr);
/* Synchronous copy in any direction (unified addressing). */
KILN_API kiln_status kiln_memcpy(void* dst, const void* src, uint64_t bytes);
/* Asynchronous copy on `stream`; host memory must stay valid until the stream is synchronized. */
KILN_API kiln_status kiln_memcpy_async(void* dst, const void* src, uint64_t bytes, kiln_stream stream);
KILN_API kiln_status kiln_memset_async(void* dst, int32_t byte_value, uint64_t bytes, kiln_stream stream);

/* ---- Streams, events, graphs ---- */
KILN_API kiln_status kiln_stream_create(int32_t device, kiln_stream* out);
KILN_API kiln_status kiln_stream_destroy(kiln_stream stream);
KILN_API kiln_status kiln_stream_synchronize(kiln_stream stream);
/* *done = 1 when all work on the stream has completed, else 0. */
KILN_API kiln_status kiln_stream_query(kiln_stream stream, int32_t* done);
KILN_API kiln_status kiln_event_create(int32_t device, int32_t timing, kiln_event* out);
KILN_API kiln_status kiln_event_destroy(kiln_event event);
KILN_API kiln_status kiln_event_record(kiln_event event, kiln_stream stream);
KILN_API kiln_status kiln_event_synchronize(kiln_event event);
KILN_API kiln_status kiln_event_elapsed_ms(kiln_event start, kiln_event end, float* ms);
/* Work enqueued on `stream` between begin and end is recorded, not run. */
KILN_API kiln_status kiln_stream_begin_capture(kiln_stream stream);
/* Ends the capture and instantiates it; on failure the capture is discarded. */
KILN_API kiln_status kiln_stream_end_capture(kiln_stream stream, kiln_graph* out);
KILN_API kiln_status kiln_graph_launch(kiln_graph graph, kiln_stream stream);
KILN_API kiln_status kiln_graph_destroy(kiln_graph graph);
/*
 * A gate holds a stream while work is enqueued behind it, so that the work then runs back to
 * back on the GPU, free of host launch gaps (per-layer profiling, device-side timing).
 * kiln_gate_close enqueues a kernel that waits until kiln_gate_open (or one second passes, so
 * a gate left closed cannot hang the GPU).
 */
KILN_API kiln_status kiln_gate_create(kiln_gate* out);
KILN_API kiln_status kiln_gate_destroy(kiln_gate gate);
KILN_API kiln_status kiln_gate_close(kiln_gate gate, kiln_stream stream);
KILN_API kiln_status kiln_gate_open(kiln_gate gate);

/* ---- Kernels: one launch per layer kind, enqueued on `stream` ---- */
KILN_API kiln_status kiln_launch_activation(const kiln_activation_params* p, kiln_stream stream);
KILN_API kiln_status kiln_launch_convolution(const kiln_convolution_params* p, kiln_stream stream);
KILN_API kiln_status kiln_launch_fully_connected(const kiln_fully_connected_params* p, kiln_stream stream);
KILN_API kiln_status kiln_launch_pooling(const kiln_pooling_params* p, kiln_stream stream);
KILN_API kiln_status kiln_launch_softmax(const kiln_softmax_params* p, kiln_stream stream);
KILN_API kiln_status kiln_launch_elementwise(const kiln_elementwise_params* p, kiln_stream stream);
KILN_API kiln_status kiln_launch_scale(const kiln_scale_params* p, kiln_stream stream);
KILN_API kiln_status kiln_launch_identity(const kiln_identity_params* p, kiln_stream stream);
KILN_API kiln_status kiln_launch_copy(const kiln_copy_params* p, kiln_stream stream);
KILN_API kiln_status kiln_launch_unary(const kiln_unary_params* p, kiln_stream stream);
KILN_API kiln_status kiln_launch_reduce(const kiln_reduce_params* p, kiln_stream stream);
KILN_API kiln_status kiln_launch_lrn(const kiln_lrn_params* p, kiln_stream stream);
KILN_API kiln_status kiln_launch_fused_mlp(const kiln_fused_mlp_params* p, kiln_stream stream);
KILN_API kiln_status kiln_launch_fused_elementwise(const kiln_fused_elementwise_params* p, kiln_stream stream);
KILN_API kiln_status kiln_launch_matrix_multiply(const kiln_matrix_multiply_params* p, kiln_stream stream);
KILN_API kiln_status kiln_launch_gather(const kiln_gather_params* p, kiln_stream stream);
KILN_API kiln_status kiln_launch_topk(const kiln_topk_params* p, kiln_stream stream);
KILN_API kiln_status kiln_launch_deconvolution(const kiln_deconvolution_params* p, kiln_stream stream);
KILN_API kiln_status kiln_launch_ragged_softmax(const kiln_ragged_softmax_params* p, kiln_stream stream);

/* ---- Tactics: alternative implementations of a layer, timed by the builder (builder/tune) ---- */
enum {
  KILN_TACTIC_DEFAULT = 0,   /* the layer kind's own kiln_launch_<op> */
  KILN_TACTIC_IGEMM = 1,     /* convolution: implicit GEMM, tile `variant`, K cut in `splits` */
  KILN_TACTIC_POINTWISE = 2, /* convolution 1x1 without padding as a GEMM; tile, splits */
  KILN_TACTIC_DIRECT = 3,    /* convolution: direct, filters in shared memory (small C·kh·kw) */
  KILN_TACTIC_GEMM = 4,      /* fully connected: tiled GEMM, tile `variant`, K split */
  KILN_TACTIC_CUDNN = 5,     /* convolution: cuDNN forward algorithm `variant` (loaded at run time) */
  KILN_TACTIC_CUBLASLT = 6   /* fully connected: cuBLASLt matmul with a 64-byte algorithm */
};
/* Optional vendor libraries, opened with dlopen from an absolute path; never linked. */
enum { KILN_VENDOR_CUBLASLT = 1, KILN_VENDOR_CUDNN = 2 };
/* Opens `path` (and, for cuDNN, its sibling libcudnn_*.so.9) and resolves the entry points used. */
KILN_API kiln_status kiln_vendor_load(int32_t library, const char* path);
/* *loaded = 1 when the library has been opened by kiln_vendor_load. */
KILN_API kiln_status kiln_vendor_loaded(int32_t library, int32_t* loaded);
/*
 * Workspace bytes a tactic needs on this problem; KILN_UNSUPPORTED when it does not apply (a
 * 1x1 tactic on a 3x3 convolution, a split longer than K, a vendor library absent or refusing).
 */
KILN_API kiln_status kiln_tactic_convolution_workspace(const kiln_convolution_params* p, int32_t kind,
                                                       int32_t variant, int32_t splits, int32_t device,
                                                       uint64_t* bytes);
KILN_API kiln_status kiln_tactic_convolution_launch(const kiln_convolution_params* p, int32_t kind,
                                                    int32_t variant, int32_t splits, kiln_stream stream);
/* As above for fully connected layers; `algo` is the cuBLASLt algorithm (8 words) or NULL. */
KILN_API kiln_status kiln_tactic_fully_connected_workspace(const kiln_fully_connected_params* p,
                                                           int32_t kind, int32_t variant, int32_t splits,
                                                           const uint64_t* algo, int32_t device,
                                                           uint64_t* bytes);
KILN_API kiln_status kiln_tactic_fully_connected_launch(const kiln_fully_connected_params* p,
                                                        int32_t kind, int32_t variant, int32_t splits,
                                                        const uint64_t* algo, kiln_stream stream);
/*
 * Up to max_count cuBLASLt algorithms for this fully connected problem (heuristic order), each
 * 8 words in `algos` with its workspace in `workspace`, fitting max_workspace bytes.
 */
KILN_API kiln_status kiln_tactic_cublaslt_algorithms(const kiln_fully_connected_params* p, int32_t device,
                                                 uint64_t max_workspace, int32_t max_count,
                                                 uint64_t* algos, uint64_t* workspace, int32_t* count);

/* RNNv2 (kiln_rnn_v2_params above); workspace bytes for the given problem (pointers unread). */
KILN_API kiln_status kiln_rnn_v2_workspace_bytes(const kiln_rnn_v2_params* p, uint64_t* bytes);
KILN_API kiln_status kiln_launch_rnn_v2(const kiln_rnn_v2_params* p, kiln_stream stream);
/* One step's feedback and collect copies of a device-side loop (kiln_loop_copies_params). */
KILN_API kiln_status kiln_launch_loop_copies(const kiln_loop_copies_params* p, kiln_stream stream);

/*
 * Reduced precision (cuda/src/kernels/precision.cu). Reduced tensors live in their float32 slots
 * holding exactly their format's values (runtime/cpu/_quant.ts). Formats: KILN_F32, KILN_F16
 * (half-rounded), KILN_I8 (fround(q·scale), q = quantize(x, scale)).
 * Reformat: y[i] = x[i] in `format`. The kiln_lowp_*_launch functions run Convolution / FullyConnected on
 * tensor cores in `precision` (KILN_F16: FP32 accumulation; KILN_I8: int32 accumulation, input
 * step x_scale, per-output-channel weight scales, no residual, workspace ≥ round_up(4·k, 256) +
 * k·(c/groups)·kernel_h·kernel_w bytes) and write y in y_format (y_scale for KILN_I8).
 */
KILN_API kiln_status kiln_lowp_reformat_launch(const float* x, float* y, int64_t count, int32_t format,
                                          float scale, kiln_stream stream);
KILN_API kiln_status kiln_lowp_convolution_launch(const kiln_convolution_params* p, int32_t precision,
                                                  float x_scale, int32_t y_format, float y_scale,
                                                  kiln_stream stream);
KILN_API kiln_status kiln_lowp_fully_connected_launch(const kiln_fully_connected_params* p,
                                                      int32_t precision, float x_scale,
                                                      int32_t y_format, float y_scale,
                                                      kiln_stream stream);

#ifdef __cplusplus
}
#endif

#endif /* KILN_H */
