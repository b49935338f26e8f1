/**
 * The parameter structs of kiln.h and their enums, mirrored field for field in declaration
 * order. library.ts checks every layout against the compiled library when it loads.
 */
import { StructLayout } from "./_layout.ts";

export const MAX_RANK = 8;

/** KILN_F32 ... (kiln.h), by Kiln dtype name. */
export const DTYPE_CODE = { float32: 0, float16: 1, int8: 2, int32: 3 } as const;

/** KILN_ACT_* by activation type name (dsl/layers/_epilogue.ts); 0 is none. */
export const ACTIVATION_CODE = {
  relu: 1,
  sigmoid: 2,
  tanh: 3,
  leaky_relu: 4,
  elu: 5,
  selu: 6,
  softsign: 7,
  softplus: 8,
  clip: 9,
  hard_sigmoid: 10,
  scaled_tanh: 11,
  thresholded_relu: 12,
} as const;

export const RESIDUAL_CODE = { none: 0, pre: 1, post: 2 } as const;

export const ELEMENTWISE_CODE = {
  sum: 0,
  prod: 1,
  max: 2,
  min: 3,
  sub: 4,
  div: 5,
  pow: 6,
} as const;

export const POOL_CODE = { max: 0, average: 1 } as const;
export const SCALE_MODE_CODE = { uniform: 0, channel: 1, elementwise: 2 } as const;

export const DEVICE_PROPS = new StructLayout(1, "kiln_device_props", [
  ["name", "char[256]"],
  ["major", "i32"],
  ["minor", "i32"],
  ["multiprocessors", "i32"],
  ["max_threads_per_multiprocessor", "i32"],
  ["total_memory", "u64"],
  ["l2_cache_bytes", "i32"],
  ["shared_memory_per_block_optin", "i32"],
  ["driver_version", "i32"],
  ["runtime_version", "i32"],
  ["pci_bus_id", "i32"],
  ["pci_device_id", "i32"],
]);

/** The epilogue fields shared by Convolution and FullyConnected. */
const EPILOGUE = [
  ["act", "i32"],
  ["alpha", "f32"],
  ["beta", "f32"],
  ["residual_mode", "i32"],
] as const;

export const ACTIVATION_PARAMS = new StructLayout(2, "kiln_activation_params", [
  ["x", "ptr"],
  ["y", "ptr"],
  ["count", "i64"],
  ["act", "i32"],
  ["alpha", "f32"],
  ["beta", "f32"],
]);

export const CONVOLUTION_PARAMS = new StructLayout(3, "kiln_convolution_params", [
  ["x", "ptr"],
  ["w", "ptr"],
  ["bias", "ptr"],
  ["residual", "ptr"],
  ["y", "ptr"],
  ["workspace", "ptr"],
  ["workspace_bytes", "i64"],
  ["n", "i32"],
  ["c", "i32"],
  ["in_h", "i32"],
  ["in_w", "i32"],
  ["k", "i32"],
  ["out_h", "i32"],
  ["out_w", "i32"],
  ["kernel_h", "i32"],
  ["kernel_w", "i32"],
  ["stride_h", "i32"],
  ["stride_w", "i32"],
  ["pad_h", "i32"],
  ["pad_w", "i32"],
  ["dilation_h", "i32"],
  ["dilation_w", "i32"],
  ["groups", "i32"],
  ...EPILOGUE,
  ["x_batch_stride", "i64"],
  ["y_batch_stride", "i64"],
]);

export const FULLY_CONNECTED_PARAMS = new StructLayout(4, "kiln_fully_connected_params", [
  ["x", "ptr"],
  ["w", "ptr"],
  ["bias", "ptr"],
  ["residual", "ptr"],
  ["y", "ptr"],
  ["workspace", "ptr"],
  ["workspace_bytes", "i64"],
  ["m", "i32"],
  ["n", "i32"],
  ["k", "i32"],
  ...EPILOGUE,
]);

export const POOLING_PARAMS = new StructLayout(5, "kiln_pooling_params", [
  ["x", "ptr"],
  ["y", "ptr"],
  ["planes", "i32"],
  ["in_h", "i32"],
  ["in_w", "i32"],
  ["out_h", "i32"],
  ["out_w", "i32"],
  ["window_h", "i32"],
  ["window_w", "i32"],
  ["stride_h", "i32"],
  ["stride_w", "i32"],
  ["pad_h", "i32"],
  ["pad_w", "i32"],
  ["post_pad_h", "i32"],
  ["post_pad_w", "i32"],
  ["type", "i32"],
  ["exclude_padding", "i32"],
  ["channels", "i32"],
  ["y_batch_stride", "i64"],
]);

export const SOFTMAX_PARAMS = new StructLayout(6, "kiln_softmax_params", [
  ["x", "ptr"],
  ["y", "ptr"],
  ["outer", "i32"],
  ["len", "i32"],
  ["inner", "i32"],
  ["log", "i32"],
]);

export const ELEMENTWISE_PARAMS = new StructLayout(7, "kiln_elementwise_params", [
  ["a", "ptr"],
  ["b", "ptr"],
  ["y", "ptr"],
  ["op", "i32"],
  ["rank", "i32"],
  ["out_dims", `i64[${MAX_RANK}]`],
  ["a_strides", `i64[${MAX_RANK}]`],
  ["b_strides", `i64[${MAX_RANK}]`],
]);

export const SCALE_PARAMS = new StructLayout(8, "kiln_scale_params", [
  ["x", "ptr"],
  ["y", "ptr"],
  ["scale", "ptr"],
  ["shift", "ptr"],
  ["power", "ptr"],
  ["count", "i64"],
  ["inner", "i64"],
  ["per_item", "i64"],
  ["mode", "i32"],
  ["channels", "i32"],
]);

export const IDENTITY_PARAMS = new StructLayout(9, "kiln_identity_params", [
  ["x", "ptr"],
  ["y", "ptr"],
  ["count", "i64"],
  ["src_dtype", "i32"],
  ["dst_dtype", "i32"],
]);

export const PAD_MODE_CODE = { constant: 0, reflect: 1, edge: 2 } as const;
export const REDUCE_CODE = { sum: 0, prod: 1, max: 2, min: 3, avg: 4 } as const;
/** KILN_UNARY_* in dsl/layers/unary.ts's order. */
export const UNARY_CODE = {
  exp: 0,
  log: 1,
  sqrt: 2,
  recip: 3,
  abs: 4,
  neg: 5,
  sin: 6,
  cos: 7,
  tan: 8,
  sinh: 9,
  cosh: 10,
  asin: 11,
  acos: 12,
  atan: 13,
  asinh: 14,
  acosh: 15,
  atanh: 16,
  ceil: 17,
  floor: 18,
  round: 19,
  erf: 20,
  sign: 21,
  not: 22,
} as const;

const RANK_ARRAY = `i64[${MAX_RANK}]` as const;

export const COPY_PARAMS = new StructLayout(10, "kiln_copy_params", [
  ["x", "ptr"],
  ["y", "ptr"],
  ["rank", "i32"],
  ["mid_rank", "i32"],
  ["element_bytes", "i32"],
  ["mode", "i32"],
  ["fill_bits", "i32"],
  ["reserved", "i32"],
  ["dims", RANK_ARRAY],
  ["out_strides", RANK_ARRAY],
  ["in_strides", RANK_ARRAY],
  ["in_dims", RANK_ARRAY],
  ["pre", RANK_ARRAY],
  ["mid_dims", RANK_ARRAY],
  ["mid_strides", RANK_ARRAY],
]);

export const UNARY_PARAMS = new StructLayout(11, "kiln_unary_params", [
  ["x", "ptr"],
  ["y", "ptr"],
  ["count", "i64"],
  ["op", "i32"],
  ["dtype", "i32"],
]);

export const REDUCE_PARAMS = new StructLayout(12, "kiln_reduce_params", [
  ["x", "ptr"],
  ["y", "ptr"],
  ["op", "i32"],
  ["dtype", "i32"],
  ["kept_rank", "i32"],
  ["reduced_rank", "i32"],
  ["kept_dims", RANK_ARRAY],
  ["kept_strides", RANK_ARRAY],
  ["reduced_dims", RANK_ARRAY],
  ["reduced_strides", RANK_ARRAY],
]);

export const LRN_PARAMS = new StructLayout(13, "kiln_lrn_params", [
  ["x", "ptr"],
  ["y", "ptr"],
  ["outer", "i32"],
  ["channels", "i32"],
  ["inner", "i32"],
  ["window", "i32"],
  ["alpha", "f64"],
  ["beta", "f64"],
  ["k", "f64"],
]);

export const MATRIX_MULTIPLY_PARAMS = new StructLayout(20, "kiln_matrix_multiply_params", [
  ["a", "ptr"],
  ["b", "ptr"],
  ["bias", "ptr"],
  ["residual", "ptr"],
  ["y", "ptr"],
  ["workspace", "ptr"],
  ["workspace_bytes", "i64"],
  ["m", "i32"],
  ["n", "i32"],
  ["k", "i32"],
  ["transpose_a", "i32"],
  ["transpose_b", "i32"],
  ["batch_rank", "i32"],
  ...EPILOGUE,
  ["batch_dims", RANK_ARRAY],
  ["a_strides", RANK_ARRAY],
  ["b_strides", RANK_ARRAY],
]);

export const GATHER_PARAMS = new StructLayout(21, "kiln_gather_params", [
  ["data", "ptr"],
  ["indices", "ptr"],
  ["y", "ptr"],
  ["error", "ptr"],
  ["outer", "i64"],
  ["axis_len", "i64"],
  ["inner", "i64"],
  ["count", "i64"],
  ["element_bytes", "i32"],
  ["reserved", "i32"],
]);

export const TOPK_PARAMS = new StructLayout(22, "kiln_topk_params", [
  ["x", "ptr"],
  ["values", "ptr"],
  ["indices", "ptr"],
  ["outer", "i64"],
  ["inner", "i64"],
  ["len", "i32"],
  ["k", "i32"],
  ["op", "i32"],
  ["dtype", "i32"],
]);

/** KILN_TOPK_MAX_CHUNKED_K and the kernel's buffer: k beyond it needs len <= TOPK_BUFFER. */
export const TOPK_MAX_CHUNKED_K = 2048;
export const TOPK_BUFFER = 4096;

export const DECONVOLUTION_PARAMS = new StructLayout(23, "kiln_deconvolution_params", [
  ["x", "ptr"],
  ["w", "ptr"],
  ["bias", "ptr"],
  ["residual", "ptr"],
  ["y", "ptr"],
  ["n", "i32"],
  ["c", "i32"],
  ["in_h", "i32"],
  ["in_w", "i32"],
  ["k", "i32"],
  ["out_h", "i32"],
  ["out_w", "i32"],
  ["kernel_h", "i32"],
  ["kernel_w", "i32"],
  ["stride_h", "i32"],
  ["stride_w", "i32"],
  ["pad_h", "i32"],
  ["pad_w", "i32"],
  ["dilation_h", "i32"],
  ["dilation_w", "i32"],
  ["groups", "i32"],
  ...EPILOGUE,
]);

export const RAGGED_SOFTMAX_PARAMS = new StructLayout(24, "kiln_ragged_softmax_params", [
  ["x", "ptr"],
  ["bounds", "ptr"],
  ["y", "ptr"],
  ["error", "ptr"],
  ["rows", "i64"],
  ["len", "i32"],
  ["reserved", "i32"],
]);

/** KILN_MLP_MAX_STAGES, KILN_FUSED_MAX_STEPS, KILN_FUSED_MAX_OPERANDS (kiln.h). */
export const MLP_MAX_STAGES = 8;
export const FUSED_MAX_STEPS = 16;
export const FUSED_MAX_OPERANDS = 8;

/** Fields `name0` ... `name<n-1>`: a C array of pointers or floats, one element per field. */
function elements<P extends string, T extends "ptr" | "f32">(
  name: P,
  n: number,
  type: T,
): [`${P}${number}`, T][] {
  return Array.from({ length: n }, (_, i) => [`${name}${i}` as `${P}${number}`, type]);
}

export const FUSED_MLP_PARAMS = new StructLayout(30, "kiln_fused_mlp_params", [
  ["x", "ptr"],
  ["y", "ptr"],
  ["workspace", "ptr"],
  ["workspace_bytes", "i64"],
  ...elements("w", MLP_MAX_STAGES, "ptr"),
  ...elements("bias", MLP_MAX_STAGES, "ptr"),
  ["m", "i32"],
  ["k", "i32"],
  ["stages", "i32"],
  ["reserved", "i32"],
  ["n", `i32[${MLP_MAX_STAGES}]`],
  ["act", `i32[${MLP_MAX_STAGES}]`],
  ...elements("alpha", MLP_MAX_STAGES, "f32"),
  ...elements("beta", MLP_MAX_STAGES, "f32"),
]);

/** KILN_FUSED_STEP_* by FusedElementwise step (binary reversed: operand op value). */
export const FUSED_STEP_CODE = { unary: 0, activation: 1, binary: 2, binary_reversed: 3 } as const;

export const FUSED_ELEMENTWISE_PARAMS = new StructLayout(31, "kiln_fused_elementwise_params", [
  ["x", "ptr"],
  ["y", "ptr"],
  ["count", "i64"],
  ...elements("operand", FUSED_MAX_OPERANDS, "ptr"),
  ["operand_inner", `i64[${FUSED_MAX_OPERANDS}]`],
  ["operand_count", `i64[${FUSED_MAX_OPERANDS}]`],
  ["steps", "i32"],
  ["operands", "i32"],
  ["step_kind", `i32[${FUSED_MAX_STEPS}]`],
  ["step_fn", `i32[${FUSED_MAX_STEPS}]`],
  ["step_operand", `i32[${FUSED_MAX_STEPS}]`],
  ...elements("alpha", FUSED_MAX_STEPS, "f32"),
  ...elements("beta", FUSED_MAX_STEPS, "f32"),
]);

/** KILN_RNN_* by RNNv2 op (dsl/layers/rnn_v2.ts). */
export const RNN_OP_CODE = { lstm: 0, gru: 1, rnn_relu: 2, rnn_tanh: 3 } as const;

export const RNN_V2_PARAMS = new StructLayout(14, "kiln_rnn_v2_params", [
  ["x", "ptr"],
  ["h0", "ptr"],
  ["c0", "ptr"],
  ["lengths", "ptr"],
  ["y", "ptr"],
  ["h_out", "ptr"],
  ["c_out", "ptr"],
  ["weights", "ptr"],
  ["workspace", "ptr"],
  ["workspace_bytes", "i64"],
  ["op", "i32"],
  ["n", "i32"],
  ["t", "i32"],
  ["e", "i32"],
  ["hidden", "i32"],
  ["layers", "i32"],
  ["dirs", "i32"],
  ["skip_input", "i32"],
]);

/** KILN_MAX_LOOP_COPIES; each kiln_loop_copy is {src, dst, bytes, dst_step_bytes}, 8 bytes each. */
export const MAX_LOOP_COPIES = 64;

export const LOOP_COPIES_PARAMS = new StructLayout(15, "kiln_loop_copies_params", [
  ["copies", "ptr"],
  ["counter", "ptr"],
  ["count", "i32"],
  ["reserved", "i32"],
]);

/** Every struct the ABI declares, checked at load time. */
export const ALL_STRUCTS: readonly StructLayout[] = [
  DEVICE_PROPS,
  ACTIVATION_PARAMS,
  CONVOLUTION_PARAMS,
  FULLY_CONNECTED_PARAMS,
  POOLING_PARAMS,
  SOFTMAX_PARAMS,
  ELEMENTWISE_PARAMS,
  SCALE_PARAMS,
  IDENTITY_PARAMS,
  COPY_PARAMS,
  UNARY_PARAMS,
  REDUCE_PARAMS,
  LRN_PARAMS,
  MATRIX_MULTIPLY_PARAMS,
  GATHER_PARAMS,
  TOPK_PARAMS,
  DECONVOLUTION_PARAMS,
  RAGGED_SOFTMAX_PARAMS,
  FUSED_MLP_PARAMS,
  FUSED_ELEMENTWISE_PARAMS,
  RNN_V2_PARAMS,
  LOOP_COPIES_PARAMS,
];
