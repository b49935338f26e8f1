/**
 * The single symbol table of libkiln.so, mirroring cuda/include/kiln.h line for line. Every
 * parameter's C type is in a comment. Pointers to parameter structs and out-parameters cross as
 * "buffer" (a typed array the call reads or writes before returning); device and pinned memory
 * and handles cross as "pointer".
 *
 * Waiting calls exist twice: blocking (short work: a blocking call costs ~13 ns of FFI overhead)
 * and `nonblocking` under an `_async` name (long work only: a nonblocking call and its await
 * cost ~21 µs on the H100 machine, more than a whole small network).
 */

/** A kiln_status (0 = ok). */
const status = "i32" as const;

export const SYMBOLS = {
  // ---- Self-description ----
  /** int32_t kiln_abi_version(void) */
  kiln_abi_version: { parameters: [], result: "i32" },
  /** const char* kiln_last_error(void) */
  kiln_last_error: { parameters: [], result: "pointer" },
  /** const char* kiln_status_string(kiln_status status) */
  kiln_status_string: { parameters: ["i32"], result: "pointer" },
  /** kiln_status kiln_abi_layout(int32_t struct_id, int32_t field, int64_t* out) */
  kiln_abi_layout: { parameters: ["i32", "i32", "buffer"], result: status },

  // ---- Devices ----
  /** kiln_status kiln_device_count(int32_t* count) */
  kiln_device_count: { parameters: ["buffer"], result: status },
  /** kiln_status kiln_device_props_get(int32_t device, kiln_device_props* out) */
  kiln_device_props_get: { parameters: ["i32", "buffer"], result: status },
  /** kiln_status kiln_mem_get_info(int32_t device, uint64_t* free_bytes, uint64_t* total_bytes) */
  kiln_mem_get_info: { parameters: ["i32", "buffer", "buffer"], result: status },
  /** kiln_status kiln_device_synchronize(int32_t device) */
  kiln_device_synchronize: { parameters: ["i32"], result: status },
  /** kiln_status kiln_gemm_workspace_bytes(int32_t device, uint64_t* bytes) */
  kiln_gemm_workspace_bytes: { parameters: ["i32", "buffer"], result: status },

  // ---- Memory ----
  /** kiln_status kiln_malloc(int32_t device, uint64_t bytes, void** out) */
  kiln_malloc: { parameters: ["i32", "u64", "buffer"], result: status },
  /** kiln_status kiln_free(void* ptr) */
  kiln_free: { parameters: ["pointer"], result: status },
  /** kiln_status kiln_host_alloc(uint64_t bytes, void** out) */
  kiln_host_alloc: { parameters: ["u64", "buffer"], result: status },
  /** kiln_status kiln_host_free(void* ptr) */
  kiln_host_free: { parameters: ["pointer"], result: status },
  /** kiln_status kiln_memcpy(void* dst, const void* src, uint64_t bytes) — host side as a buffer */
  kiln_memcpy_to_device: {
    name: "kiln_memcpy",
    parameters: ["pointer", "buffer", "u64"],
    result: status,
  },
  /** kiln_status kiln_memcpy(void* dst, const void* src, uint64_t bytes) — host side as a buffer */
  kiln_memcpy_to_host: {
    name: "kiln_memcpy",
    parameters: ["buffer", "pointer", "u64"],
    result: status,
  },
  /** kiln_status kiln_memcpy_async(void* dst, const void* src, uint64_t bytes, kiln_stream s) */
  kiln_memcpy_async: {
    parameters: ["pointer", "pointer", "u64", "pointer"],
    result: status,
  },
  /** kiln_status kiln_memcpy_async(...) — the host side is a typed array held until synchronized */
  kiln_memcpy_async_host: {
    name: "kiln_memcpy_async",
    parameters: ["pointer", "buffer", "u64", "pointer"],
    result: status,
  },
  /** kiln_status kiln_memset_async(void* dst, int32_t byte_value, uint64_t bytes, kiln_stream s) */
  kiln_memset_async: { parameters: ["pointer", "i32", "u64", "pointer"], result: status },

  // ---- Streams, events, graphs ----
  /** kiln_status kiln_stream_create(int32_t device, kiln_stream* out) */
  kiln_stream_create: { parameters: ["i32", "buffer"], result: status },
  /** kiln_status kiln_stream_destroy(kiln_stream stream) */
  kiln_stream_destroy: { parameters: ["pointer"], result: status },
  /** kiln_status kiln_stream_synchronize(kiln_stream stream) */
  kiln_stream_synchronize: { parameters: ["pointer"], result: status },
  /** kiln_status kiln_stream_synchronize(kiln_stream stream) — on a worker thread */
  kiln_stream_synchronize_async: {
    name: "kiln_stream_synchronize",
    parameters: ["pointer"],
    result: status,
    nonblocking: true,
  },
  /** kiln_status kiln_stream_query(kiln_stream stream, int32_t* done) */
  kiln_stream_query: { parameters: ["pointer", "buffer"], result: status },
  /** kiln_status kiln_event_create(int32_t device, int32_t timing, kiln_event* out) */
  kiln_event_create: { parameters: ["i32", "i32", "buffer"], result: status },
  /** kiln_status kiln_event_destroy(kiln_event event) */
  kiln_event_destroy: { parameters: ["pointer"], result: status },
  /** kiln_status kiln_event_record(kiln_event event, kiln_stream stream) */
  kiln_event_record: { parameters: ["pointer", "pointer"], result: status },
  /** kiln_status kiln_event_synchronize(kiln_event event) */
  kiln_event_synchronize: { parameters: ["pointer"], result: status },
  /** kiln_status kiln_event_elapsed_ms(kiln_event start, kiln_event end, float* ms) */
  kiln_event_elapsed_ms: { parameters: ["pointer", "pointer", "buffer"], result: status },
  /** kiln_status kiln_stream_begin_capture(kiln_stream stream) */
  kiln_stream_begin_capture: { parameters: ["pointer"], result: status },
  /** kiln_status kiln_stream_end_capture(kiln_stream stream, kiln_graph* out) */
  kiln_stream_end_capture: { parameters: ["pointer", "buffer"], result: status },
  /** kiln_status kiln_graph_launch(kiln_graph graph, kiln_stream stream) */
  kiln_graph_launch: { parameters: ["pointer", "pointer"], result: status },
  /** kiln_status kiln_graph_destroy(kiln_graph graph) */
  kiln_graph_destroy: { parameters: ["pointer"], result: status },
  /** kiln_status kiln_gate_create(kiln_gate* out) */
  kiln_gate_create: { parameters: ["buffer"], result: status },
  /** kiln_status kiln_gate_destroy(kiln_gate gate) */
  kiln_gate_destroy: { parameters: ["pointer"], result: status },
  /** kiln_status kiln_gate_close(kiln_gate gate, kiln_stream stream) */
  kiln_gate_close: { parameters: ["pointer", "pointer"], result: status },
  /** kiln_status kiln_gate_open(kiln_gate gate) */
  kiln_gate_open: { parameters: ["pointer"], result: status },

  // ---- Kernels: (const kiln_<op>_params* p, kiln_stream stream) ----
  /** kiln_status kiln_launch_activation(const kiln_activation_params* p, kiln_stream stream) */
  kiln_launch_activation: { parameters: ["buffer", "pointer"], result: status },
  /** kiln_status kiln_launch_convolution(const kiln_convolution_params* p, kiln_stream stream) */
  kiln_launch_convolution: { parameters: ["buffer", "pointer"], result: status },
  /** kiln_status kiln_launch_fully_connected(const kiln_fully_connected_params* p, kiln_stream s) */
  kiln_launch_fully_connected: { parameters: ["buffer", "pointer"], result: status },
  /** kiln_status kiln_launch_pooling(const kiln_pooling_params* p, kiln_stream stream) */
  kiln_launch_pooling: { parameters: ["buffer", "pointer"], result: status },
  /** kiln_status kiln_launch_softmax(const kiln_softmax_params* p, kiln_stream stream) */
  kiln_launch_softmax: { parameters: ["buffer", "pointer"], result: status },
  /** kiln_status kiln_launch_elementwise(const kiln_elementwise_params* p, kiln_stream stream) */
  kiln_launch_elementwise: { parameters: ["buffer", "pointer"], result: status },
  /** kiln_status kiln_launch_scale(const kiln_scale_params* p, kiln_stream stream) */
  kiln_launch_scale: { parameters: ["buffer", "pointer"], result: status },
  /** kiln_status kiln_launch_identity(const kiln_identity_params* p, kiln_stream stream) */
  kiln_launch_identity: { parameters: ["buffer", "pointer"], result: status },
  /** kiln_status kiln_launch_copy(const kiln_copy_params* p, kiln_stream stream) */
  kiln_launch_copy: { parameters: ["buffer", "pointer"], result: status },
  /** kiln_status kiln_launch_unary(const kiln_unary_params* p, kiln_stream stream) */
  kiln_launch_unary: { parameters: ["buffer", "pointer"], result: status },
  /** kiln_status kiln_launch_reduce(const kiln_reduce_params* p, kiln_stream stream) */
  kiln_launch_reduce: { parameters: ["buffer", "pointer"], result: status },
  /** kiln_status kiln_launch_lrn(const kiln_lrn_params* p, kiln_stream stream) */
  kiln_launch_lrn: { parameters: ["buffer", "pointer"], result: status },
  /** kiln_status kiln_launch_matrix_multiply(const kiln_matrix_multiply_params* p, kiln_stream s) */
  kiln_launch_matrix_multiply: { parameters: ["buffer", "pointer"], result: status },
  /** kiln_status kiln_launch_gather(const kiln_gather_params* p, kiln_stream stream) */
  kiln_launch_gather: { parameters: ["buffer", "pointer"], result: status },
  /** kiln_status kiln_launch_topk(const kiln_topk_params* p, kiln_stream stream) */
  kiln_launch_topk: { parameters: ["buffer", "pointer"], result: status },
  /** kiln_status kiln_launch_deconvolution(const kiln_deconvolution_params* p, kiln_stream s) */
  kiln_launch_deconvolution: { parameters: ["buffer", "pointer"], result: status },
  /** kiln_status kiln_launch_ragged_softmax(const kiln_ragged_softmax_params* p, kiln_stream s) */
  kiln_launch_ragged_softmax: { parameters: ["buffer", "pointer"], result: status },

  // ---- Tactics (builder/tune) and the optional vendor libraries ----
  /** kiln_status kiln_vendor_load(int32_t library, const char* path) */
  kiln_vendor_load: { parameters: ["i32", "buffer"], result: status },
  /** kiln_status kiln_vendor_loaded(int32_t library, int32_t* loaded) */
  kiln_vendor_loaded: { parameters: ["i32", "buffer"], result: status },
  /** kiln_status kiln_tactic_convolution_workspace(const kiln_convolution_params* p, int32_t kind,
   *  int32_t variant, int32_t splits, int32_t device, uint64_t* bytes) */
  kiln_tactic_convolution_workspace: {
    parameters: ["buffer", "i32", "i32", "i32", "i32", "buffer"],
    result: status,
  },
  /** kiln_status kiln_tactic_convolution_launch(const kiln_convolution_params* p, int32_t kind,
   *  int32_t variant, int32_t splits, kiln_stream stream) */
  kiln_tactic_convolution_launch: {
    parameters: ["buffer", "i32", "i32", "i32", "pointer"],
    result: status,
  },
  /** kiln_status kiln_tactic_fully_connected_workspace(const kiln_fully_connected_params* p,
   *  int32_t kind, int32_t variant, int32_t splits, const uint64_t* algo, int32_t device,
   *  uint64_t* bytes) */
  kiln_tactic_fully_connected_workspace: {
    parameters: ["buffer", "i32", "i32", "i32", "buffer", "i32", "buffer"],
    result: status,
  },
  /** kiln_status kiln_tactic_fully_connected_launch(const kiln_fully_connected_params* p,
   *  int32_t kind, int32_t variant, int32_t splits, const uint64_t* algo, kiln_stream stream) */
  kiln_tactic_fully_connected_launch: {
    parameters: ["buffer", "i32", "i32", "i32", "buffer", "pointer"],
    result: status,
  },
  /** kiln_status kiln_tactic_cublaslt_algorithms(const kiln_fully_connected_params* p,
   *  int32_t device, uint64_t max_workspace, int32_t max_count, uint64_t* algos,
   *  uint64_t* workspace, int32_t* count) */
  kiln_tactic_cublaslt_algorithms: {
    parameters: ["buffer", "i32", "u64", "i32", "buffer", "buffer", "buffer"],
    result: status,
  },
  /** kiln_status kiln_launch_fused_mlp(const kiln_fused_mlp_params* p, kiln_stream stream) */
  kiln_launch_fused_mlp: { parameters: ["buffer", "pointer"], result: status },
  /** kiln_status kiln_launch_fused_elementwise(const kiln_fused_elementwise_params* p, kiln_stream s) */
  kiln_launch_fused_elementwise: { parameters: ["buffer", "pointer"], result: status },
  /** kiln_status kiln_rnn_v2_workspace_bytes(const kiln_rnn_v2_params* p, uint64_t* bytes) */
  kiln_rnn_v2_workspace_bytes: { parameters: ["buffer", "buffer"], result: status },
  /** kiln_status kiln_launch_rnn_v2(const kiln_rnn_v2_params* p, kiln_stream stream) */
  kiln_launch_rnn_v2: { parameters: ["buffer", "pointer"], result: status },
  /** kiln_status kiln_launch_loop_copies(const kiln_loop_copies_params* p, kiln_stream stream) */
  kiln_launch_loop_copies: { parameters: ["buffer", "pointer"], result: status },
  /** kiln_status kiln_lowp_reformat_launch(const float* x, float* y, int64_t count, int32_t format,
   *  float scale, kiln_stream stream) */
  kiln_lowp_reformat_launch: {
    parameters: ["pointer", "pointer", "i64", "i32", "f32", "pointer"],
    result: status,
  },
  /** kiln_status kiln_lowp_convolution_launch(const kiln_convolution_params* p, int32_t precision,
   *  float x_scale, int32_t y_format, float y_scale, kiln_stream stream) */
  kiln_lowp_convolution_launch: {
    parameters: ["buffer", "i32", "f32", "i32", "f32", "pointer"],
    result: status,
  },
  /** kiln_status kiln_lowp_fully_connected_launch(const kiln_fully_connected_params* p,
   *  int32_t precision, float x_scale, int32_t y_format, float y_scale, kiln_stream stream) */
  kiln_lowp_fully_connected_launch: {
    parameters: ["buffer", "i32", "f32", "i32", "f32", "pointer"],
    result: status,
  },
} as const satisfies Deno.ForeignLibraryInterface;

export type KilnSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** kiln_status values (kiln.h). */
export const STATUS = {
  OK: 0,
  INVALID_ARGUMENT: 1,
  NO_DEVICE: 2,
  HOST_OUT_OF_MEMORY: 3,
  INTERNAL: 4,
  UNSUPPORTED: 5,
  CUDA_ERROR_BASE: 1000,
} as const;

/** The ABI version this TypeScript mirror was written against (KILN_ABI_VERSION). */
export const ABI_VERSION = 2;
