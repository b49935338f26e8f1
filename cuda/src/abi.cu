// kiln_abi_layout: the size and field offsets of every parameter struct in kiln.h, so that
// TypeScript's mirror (ffi/structs.ts) is checked against what the compiler laid out.
#include <stddef.h>

#include "common.cuh"

namespace {

#define OFF(T, f) (int64_t) offsetof(T, f)

const int64_t kDeviceProps[] = {
    OFF(kiln_device_props, name),
    OFF(kiln_device_props, major),
    OFF(kiln_device_props, minor),
    OFF(kiln_device_props, multiprocessors),
    OFF(kiln_device_props, max_threads_per_multiprocessor),
    OFF(kiln_device_props, total_memory),
    OFF(kiln_device_props, l2_cache_bytes),
    OFF(kiln_device_props, shared_memory_per_block_optin),
    OFF(kiln_device_props, driver_version),
    OFF(kiln_device_props, runtime_version),
    OFF(kiln_device_props, pci_bus_id),
    OFF(kiln_device_props, pci_device_id),
};

const int64_t kActivation[] = {
    OFF(kiln_activation_params, x),     OFF(kiln_activation_params, y),
    OFF(kiln_activation_params, count), OFF(kiln_activation_params, act),
    OFF(kiln_activation_params, alpha), OFF(kiln_activation_params, beta),
};

const int64_t kConvolution[] = {
    OFF(kiln_convolution_params, x),          OFF(kiln_convolution_params, w),
    OFF(kiln_convolution_params, bias),       OFF(kiln_convolution_params, residual),
    OFF(kiln_convolution_params, y),          OFF(kiln_convolution_params, workspace),
    OFF(kiln_convolution_params, workspace_bytes), OFF(kiln_convolution_params, n),
    OFF(kiln_convolution_params, c),          OFF(kiln_convolution_params, in_h),
    OFF(kiln_convolution_params, in_w),       OFF(kiln_convolution_params, k),
    OFF(kiln_convolution_params, out_h),      OFF(kiln_convolution_params, out_w),
    OFF(kiln_convolution_params, kernel_h),   OFF(kiln_convolution_params, kernel_w),
    OFF(kiln_convolution_params, stride_h),   OFF(kiln_convolution_params, stride_w),
    OFF(kiln_convolution_params, pad_h),      OFF(kiln_convolution_params, pad_w),
    OFF(kiln_convolution_params, dilation_h), OFF(kiln_convolution_params, dilation_w),
    OFF(kiln_convolution_params, groups),     OFF(kiln_convolution_params, act),
    OFF(kiln_convolution_params, alpha),      OFF(kiln_convolution_params, beta),
    OFF(kiln_convolution_params, residual_mode), OFF(kiln_convolution_params, x_batch_stride),
    OFF(kiln_convolution_params, y_batch_stride),
};

const int64_t kFullyConnected[] = {
    OFF(kiln_fully_connected_params, x),     OFF(kiln_fully_connected_params, w),
    OFF(kiln_fully_connected_params, bias),  OFF(kiln_fully_connected_params, residual),
    OFF(kiln_fully_connected_params, y),     OFF(kiln_fully_connected_params, workspace),
    OFF(kiln_fully_connected_params, workspace_bytes), OFF(kiln_fully_connected_params, m),
    OFF(kiln_fully_connected_params, n),     OFF(kiln_fully_connected_params, k),
    OFF(kiln_fully_connected_params, act),   OFF(kiln_fully_connected_params, alpha),
    OFF(kiln_fully_connected_params, beta),  OFF(kiln_fully_connected_params, residual_mode),
};

const int64_t kPooling[] = {
    OFF(kiln_pooling_params, x),          OFF(kiln_pooling_params, y),
    OFF(kiln_pooling_params, planes),     OFF(kiln_pooling_params, in_h),
    OFF(kiln_pooling_params, in_w),       OFF(kiln_pooling_params, out_h),
    OFF(kiln_pooling_params, out_w),      OFF(kiln_pooling_params, window_h),
    OFF(kiln_pooling_params, window_w),   OFF(kiln_pooling_params, stride_h),
    OFF(kiln_pooling_params, stride_w),   OFF(kiln_pooling_params, pad_h),
    OFF(kiln_pooling_params, pad_w),      OFF(kiln_pooling_params, post_pad_h),
    OFF(kiln_pooling_params, post_pad_w), OFF(kiln_pooling_params, type),
    OFF(kiln_pooling_params, exclude_padding), OFF(kiln_pooling_params, channels),
    OFF(kiln_pooling_params, y_batch_stride),
};

const int64_t kSoftmax[] = {
    OFF(kiln_softmax_params, x),     OFF(kiln_softmax_params, y),   OFF(kiln_softmax_params, outer),
    OFF(kiln_softmax_params, len),   OFF(kiln_softmax_params, inner), OFF(kiln_softmax_params, log),
};

const int64_t kElementwise[] = {
    OFF(kiln_elementwise_params, a),        OFF(kiln_elementwise_params, b),
    OFF(kiln_elementwise_params, y),        OFF(kiln_elementwise_params, op),
    OFF(kiln_elementwise_params, rank),     OFF(kiln_elementwise_params, out_dims),
    OFF(kiln_elementwise_params, a_strides), OFF(kiln_elementwise_params, b_strides),
};

const int64_t kScale[] = {
    OFF(kiln_scale_params, x),        OFF(kiln_scale_params, y),     OFF(kiln_scale_params, scale),
    OFF(kiln_scale_params, shift),    OFF(kiln_scale_params, power), OFF(kiln_scale_params, count),
    OFF(kiln_scale_params, inner),    OFF(kiln_scale_params, per_item), OFF(kiln_scale_params, mode),
    OFF(kiln_scale_params, channels),
};

const int64_t kIdentity[] = {
    OFF(kiln_identity_params, x),         OFF(kiln_identity_params, y),
    OFF(kiln_identity_params, count),     OFF(kiln_identity_params, src_dtype),
    OFF(kiln_identity_params, dst_dtype),
};

const int64_t kCopy[] = {
    OFF(kiln_copy_params, x),           OFF(kiln_copy_params, y),
    OFF(kiln_copy_params, rank),        OFF(kiln_copy_params, mid_rank),
    OFF(kiln_copy_params, element_bytes), OFF(kiln_copy_params, mode),
    OFF(kiln_copy_params, fill_bits),   OFF(kiln_copy_params, reserved),
    OFF(kiln_copy_params, dims),        OFF(kiln_copy_params, out_strides),
    OFF(kiln_copy_params, in_strides),  OFF(kiln_copy_params, in_dims),
    OFF(kiln_copy_params, pre),         OFF(kiln_copy_params, mid_dims),
    OFF(kiln_copy_params, mid_strides),
};

const int64_t kUnary[] = {
    OFF(kiln_unary_params, x),  OFF(kiln_unary_params, y),     OFF(kiln_unary_params, count),
    OFF(kiln_unary_params, op), OFF(kiln_unary_params, dtype),
};

const int64_t kReduce[] = {
    OFF(kiln_reduce_params, x),            OFF(kiln_reduce_params, y),
    OFF(kiln_reduce_params, op),           OFF(kiln_reduce_params, dtype),
    OFF(kiln_reduce_params, kept_rank),    OFF(kiln_reduce_params, reduced_rank),
    OFF(kiln_reduce_params, kept_dims),    OFF(kiln_reduce_params, kept_strides),
    OFF(kiln_reduce_params, reduced_dims), OFF(kiln_reduce_params, reduced_strides),
};

const int64_t kLrn[] = {
    OFF(kiln_lrn_params, x),      OFF(kiln_lrn_params, y),     OFF(kiln_lrn_params, outer),
    OFF(kiln_lrn_params, channels), OFF(kiln_lrn_params, inner), OFF(kiln_lrn_params, window),
    OFF(kiln_lrn_params, alpha),  OFF(kiln_lrn_params, beta),  OFF(kiln_lrn_params, k),
};

const int64_t kMatrixMultiply[] = {
    OFF(kiln_matrix_multiply_params, a),           OFF(kiln_matrix_multiply_params, b),
    OFF(kiln_matrix_multiply_params, bias),        OFF(kiln_matrix_multiply_params, residual),
    OFF(kiln_matrix_multiply_params, y),           OFF(kiln_matrix_multiply_params, workspace),
    OFF(kiln_matrix_multiply_params, workspace_bytes), OFF(kiln_matrix_multiply_params, m),
    OFF(kiln_matrix_multiply_params, n),           OFF(kiln_matrix_multiply_params, k),
    OFF(kiln_matrix_multiply_params, transpose_a), OFF(kiln_matrix_multiply_params, transpose_b),
    OFF(kiln_matrix_multiply_params, batch_rank),  OFF(kiln_matrix_multiply_params, act),
    OFF(kiln_matrix_multiply_params, alpha),       OFF(kiln_matrix_multiply_params, beta),
    OFF(kiln_matrix_multiply_params, residual_mode), OFF(kiln_matrix_multiply_params, batch_dims),
    OFF(kiln_matrix_multiply_params, a_strides),   OFF(kiln_matrix_multiply_params, b_strides),
};

const int64_t kGather[] = {
    OFF(kiln_gather_params, data),     OFF(kiln_gather_params, indices),
    OFF(kiln_gather_params, y),        OFF(kiln_gather_params, error),
    OFF(kiln_gather_params, outer),    OFF(kiln_gather_params, axis_len),
    OFF(kiln_gather_params, inner),    OFF(kiln_gather_params, count),
    OFF(kiln_gather_params, element_bytes), OFF(kiln_gather_params, reserved),
};

const int64_t kTopk[] = {
    OFF(kiln_topk_params, x),     OFF(kiln_topk_params, values), OFF(kiln_topk_params, indices),
    OFF(kiln_topk_params, outer), OFF(kiln_topk_params, inner),  OFF(kiln_topk_params, len),
    OFF(kiln_topk_params, k),     OFF(kiln_topk_params, op),     OFF(kiln_topk_params, dtype),
};

const int64_t kDeconvolution[] = {
    OFF(kiln_deconvolution_params, x),          OFF(kiln_deconvolution_params, w),
    OFF(kiln_deconvolution_params, bias),       OFF(kiln_deconvolution_params, residual),
    OFF(kiln_deconvolution_params, y),          OFF(kiln_deconvolution_params, n),
    OFF(kiln_deconvolution_params, c),          OFF(kiln_deconvolution_params, in_h),
    OFF(kiln_deconvolution_params, in_w),       OFF(kiln_deconvolution_params, k),
    OFF(kiln_deconvolution_params, out_h),      OFF(kiln_deconvolution_params, out_w),
    OFF(kiln_deconvolution_params, kernel_h),   OFF(kiln_deconvolution_params, kernel_w),
    OFF(kiln_deconvolution_params, stride_h),   OFF(kiln_deconvolution_params, stride_w),
    OFF(kiln_deconvolution_params, pad_h),      OFF(kiln_deconvolution_params, pad_w),
    OFF(kiln_deconvolution_params, dilation_h), OFF(kiln_deconvolution_params, dilation_w),
    OFF(kiln_deconvolution_params, groups),     OFF(kiln_deconvolution_params, act),
    OFF(kiln_deconvolution_params, alpha),      OFF(kiln_deconvolution_params, beta),
    OFF(kiln_deconvolution_params, residual_mode),
};

const int64_t kRaggedSoftmax[] = {
    OFF(kiln_ragged_softmax_params, x),     OFF(kiln_ragged_softmax_params, bounds),
    OFF(kiln_ragged_softmax_params, y),     OFF(kiln_ragged_softmax_params, error),
    OFF(kiln_ragged_softmax_params, rows),  OFF(kiln_ragged_softmax_params, len),
    OFF(kiln_ragged_softmax_params, reserved),
};

// FusedMlp and FusedElementwise: pointer and float arrays are listed element by element (ffi's
// layouts have no arrays of those), int arrays as one field.
const int64_t kFusedMlp[] = {
    OFF(kiln_fused_mlp_params, x),
    OFF(kiln_fused_mlp_params, y),
    OFF(kiln_fused_mlp_params, workspace),
    OFF(kiln_fused_mlp_params, workspace_bytes),
    OFF(kiln_fused_mlp_params, w[0]),
    OFF(kiln_fused_mlp_params, w[1]),
    OFF(kiln_fused_mlp_params, w[2]),
    OFF(kiln_fused_mlp_params, w[3]),
    OFF(kiln_fused_mlp_params, w[4]),
    OFF(kiln_fused_mlp_params, w[5]),
    OFF(kiln_fused_mlp_params, w[6]),
    OFF(kiln_fused_mlp_params, w[7]),
    OFF(kiln_fused_mlp_params, bias[0]),
    OFF(kiln_fused_mlp_params, bias[1]),
    OFF(kiln_fused_mlp_params, bias[2]),
    OFF(kiln_fused_mlp_params, bias[3]),
    OFF(kiln_fused_mlp_params, bias[4]),
    OFF(kiln_fused_mlp_params, bias[5]),
    OFF(kiln_fused_mlp_params, bias[6]),
    OFF(kiln_fused_mlp_params, bias[7]),
    OFF(kiln_fused_mlp_params, m),
    OFF(kiln_fused_mlp_params, k),
    OFF(kiln_fused_mlp_params, stages),
    OFF(kiln_fused_mlp_params, reserved),
    OFF(kiln_fused_mlp_params, n),
    OFF(kiln_fused_mlp_params, act),
    OFF(kiln_fused_mlp_params, alpha[0]),
    OFF(kiln_fused_mlp_params, alpha[1]),
    OFF(kiln_fused_mlp_params, alpha[2]),
    OFF(kiln_fused_mlp_params, alpha[3]),
    OFF(kiln_fused_mlp_params, alpha[4]),
    OFF(kiln_fused_mlp_params, alpha[5]),
    OFF(kiln_fused_mlp_params, alpha[6]),
    OFF(kiln_fused_mlp_params, alpha[7]),
    OFF(kiln_fused_mlp_params, beta[0]),
    OFF(kiln_fused_mlp_params, beta[1]),
    OFF(kiln_fused_mlp_params, beta[2]),
    OFF(kiln_fused_mlp_params, beta[3]),
    OFF(kiln_fused_mlp_params, beta[4]),
    OFF(kiln_fused_mlp_params, beta[5]),
    OFF(kiln_fused_mlp_params, beta[6]),
    OFF(kiln_fused_mlp_params, beta[7]),
};

const int64_t kFusedElementwise[] = {
    OFF(kiln_fused_elementwise_params, x),
    OFF(kiln_fused_elementwise_params, y),
    OFF(kiln_fused_elementwise_params, count),
    OFF(kiln_fused_elementwise_params, operand[0]),
    OFF(kiln_fused_elementwise_params, operand[1]),
    OFF(kiln_fused_elementwise_params, operand[2]),
    OFF(kiln_fused_elementwise_params, operand[3]),
    OFF(kiln_fused_elementwise_params, operand[4]),
    OFF(kiln_fused_elementwise_params, operand[5]),
    OFF(kiln_fused_elementwise_params, operand[6]),
    OFF(kiln_fused_elementwise_params, operand[7]),
    OFF(kiln_fused_elementwise_params, operand_inner),
    OFF(kiln_fused_elementwise_params, operand_count),
    OFF(kiln_fused_elementwise_params, steps),
    OFF(kiln_fused_elementwise_params, operands),
    OFF(kiln_fused_elementwise_params, step_kind),
    OFF(kiln_fused_elementwise_params, step_fn),
    OFF(kiln_fused_elementwise_params, step_operand),
    OFF(kiln_fused_elementwise_params, alpha[0]),
    OFF(kiln_fused_elementwise_params, alpha[1]),
    OFF(kiln_fused_elementwise_params, alpha[2]),
    OFF(kiln_fused_elementwise_params, alpha[3]),
    OFF(kiln_fused_elementwise_params, alpha[4]),
    OFF(kiln_fused_elementwise_params, alpha[5]),
    OFF(kiln_fused_elementwise_params, alpha[6]),
    OFF(kiln_fused_elementwise_params, alpha[7]),
    OFF(kiln_fused_elementwise_params, alpha[8]),
    OFF(kiln_fused_elementwise_params, alpha[9]),
    OFF(kiln_fused_elementwise_params, alpha[10]),
    OFF(kiln_fused_elementwise_params, alpha[11]),
    OFF(kiln_fused_elementwise_params, alpha[12]),
    OFF(kiln_fused_elementwise_params, alpha[13]),
    OFF(kiln_fused_elementwise_params, alpha[14]),
    OFF(kiln_fused_elementwise_params, alpha[15]),
    OFF(kiln_fused_elementwise_params, beta[0]),
    OFF(kiln_fused_elementwise_params, beta[1]),
    OFF(kiln_fused_elementwise_params, beta[2]),
    OFF(kiln_fused_elementwise_params, beta[3]),
    OFF(kiln_fused_elementwise_params, beta[4]),
    OFF(kiln_fused_elementwise_params, beta[5]),
    OFF(kiln_fused_elementwise_params, beta[6]),
    OFF(kiln_fused_elementwise_params, beta[7]),
    OFF(kiln_fused_elementwise_params, beta[8]),
    OFF(kiln_fused_elementwise_params, beta[9]),
    OFF(kiln_fused_elementwise_params, beta[10]),
    OFF(kiln_fused_elementwise_params, beta[11]),
    OFF(kiln_fused_elementwise_params, beta[12]),
    OFF(kiln_fused_elementwise_params, beta[13]),
    OFF(kiln_fused_elementwise_params, beta[14]),
    OFF(kiln_fused_elementwise_params, beta[15]),
};

const int64_t kRnnV2[] = {
    OFF(kiln_rnn_v2_params, x),         OFF(kiln_rnn_v2_params, h0),
    OFF(kiln_rnn_v2_params, c0),        OFF(kiln_rnn_v2_params, lengths),
    OFF(kiln_rnn_v2_params, y),         OFF(kiln_rnn_v2_params, h_out),
    OFF(kiln_rnn_v2_params, c_out),     OFF(kiln_rnn_v2_params, weights),
    OFF(kiln_rnn_v2_params, workspace), OFF(kiln_rnn_v2_params, workspace_bytes),
    OFF(kiln_rnn_v2_params, op),        OFF(kiln_rnn_v2_params, n),
    OFF(kiln_rnn_v2_params, t),         OFF(kiln_rnn_v2_params, e),
    OFF(kiln_rnn_v2_params, hidden),    OFF(kiln_rnn_v2_params, layers),
    OFF(kiln_rnn_v2_params, dirs),      OFF(kiln_rnn_v2_params, skip_input),
};

const int64_t kLoopCopies[] = {
    OFF(kiln_loop_copies_params, copies), OFF(kiln_loop_copies_params, counter),
    OFF(kiln_loop_copies_params, count),  OFF(kiln_loop_copies_params, reserved),
};

#undef OFF

struct Layout {
  int32_t id;
  int64_t size;
  const int64_t* offsets;
  int32_t fields;
};

#define LAYOUT(ID, T, A) {ID, (int64_t)sizeof(T), A, (int32_t)(sizeof A / sizeof A[0])}

const Layout kLayouts[] = {
    LAYOUT(KILN_STRUCT_DEVICE_PROPS, kiln_device_props, kDeviceProps),
    LAYOUT(KILN_STRUCT_ACTIVATION, kiln_activation_params, kActivation),
    LAYOUT(KILN_STRUCT_CONVOLUTION, kiln_convolution_params, kConvolution),
    LAYOUT(KILN_STRUCT_FULLY_CONNECTED, kiln_fully_connected_params, kFullyConnected),
    LAYOUT(KILN_STRUCT_POOLING, kiln_pooling_params, kPooling),
    LAYOUT(KILN_STRUCT_SOFTMAX, kiln_softmax_params, kSoftmax),
    LAYOUT(KILN_STRUCT_ELEMENTWISE, kiln_elementwise_params, kElementwise),
    LAYOUT(KILN_STRUCT_SCALE, kiln_scale_params, kScale),
    LAYOUT(KILN_STRUCT_IDENTITY, kiln_identity_params, kIdentity),
    LAYOUT(KILN_STRUCT_COPY, kiln_copy_params, kCopy),
    LAYOUT(KILN_STRUCT_UNARY, kiln_unary_params, kUnary),
    LAYOUT(KILN_STRUCT_REDUCE, kiln_reduce_params, kReduce),
    LAYOUT(KILN_STRUCT_LRN, kiln_lrn_params, kLrn),
    LAYOUT(KILN_STRUCT_RNN_V2, kiln_rnn_v2_params, kRnnV2),
    LAYOUT(KILN_STRUCT_LOOP_COPIES, kiln_loop_copies_params, kLoopCopies),
    LAYOUT(KILN_STRUCT_MATRIX_MULTIPLY, kiln_matrix_multiply_params, kMatrixMultiply),
    LAYOUT(KILN_STRUCT_GATHER, kiln_gather_params, kGather),
    LAYOUT(KILN_STRUCT_TOPK, kiln_topk_params, kTopk),
    LAYOUT(KILN_STRUCT_DECONVOLUTION, kiln_deconvolution_params, kDeconvolution),
    LAYOUT(KILN_STRUCT_RAGGED_SOFTMAX, kiln_ragged_softmax_params, kRaggedSoftmax),
    LAYOUT(KILN_STRUCT_FUSED_MLP, kiln_fused_mlp_params, kFusedMlp),
    LAYOUT(KILN_STRUCT_FUSED_ELEMENTWISE, kiln_fused_elementwise_params, kFusedElementwise),
};

#undef LAYOUT

}  // namespace

extern "C" KILN_API kiln_status kiln_abi_layout(int32_t struct_id, int32_t field, int64_t* out) {
  if (!out) return kiln::fail(KILN_INVALID_ARGUMENT, "kiln_abi_layout: out is NULL");
  for (const Layout& l : kLayouts) {
    if (l.id != struct_id) continue;
    if (field == -1) {
      *out = l.size;
    } else if (field == -2) {
      *out = l.fields;
    } else if (field >= 0 && field < l.fields) {
      *out = l.offsets[field];
    } else {
      return kiln::fail(KILN_INVALID_ARGUMENT, "kiln_abi_layout: struct %d has %d fields, not field %d",
                        struct_id, l.fields, field);
    }
    return KILN_OK;
  }
  return kiln::fail(KILN_INVALID_ARGUMENT, "kiln_abi_layout: unknown struct id %d", struct_id);
}
