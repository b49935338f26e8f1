/**
 * CUDA kernel-table entries for the data-dependent kinds: Gather (any axis, int32 indices, any
 * dtype: bytes move), TopK (max/min, any k and axis, the CPU kernel's tie and NaN order) and
 * RaggedSoftMax. Gather and RaggedSoftMax read indices/bounds only the device sees: one out of
 * range is written to the layer's error word and reported after the run (describeError).
 */
import { normalizeAxis, volume } from "../../dsl/ir/dims.ts";
import { bytesPerElement } from "../../dsl/ir/dtype.ts";
import { type TopKAttrs, topkAxis } from "../../dsl/layers/topk.ts";
import {
  DTYPE_CODE,
  GATHER_PARAMS,
  RAGGED_SOFTMAX_PARAMS,
  TOPK_BUFFER,
  TOPK_MAX_CHUNKED_K,
  TOPK_PARAMS,
} from "../../ffi/mod.ts";
import { type CudaKernel, launch } from "./_launch.ts";

export const gather: CudaKernel = {
  launch(a) {
    const [data, indices] = a.inputs;
    const axis = normalizeAxis((a.layer.attrs as { axis: number }).axis, data.dims.length);
    const count = volume(indices.dims);
    const outer = volume(data.dims, 0, axis), inner = volume(data.dims, axis + 1);
    if (outer * count * inner === 0) return;
    launch(
      a,
      "kiln_launch_gather",
      GATHER_PARAMS.pack({
        data: data.ptr,
        indices: indices.ptr,
        y: a.outputs[0].ptr,
        error: a.error,
        outer,
        axis_len: data.dims[axis],
        inner,
        count,
        element_bytes: bytesPerElement(data.dtype),
      }),
    );
  },
  describeError(layer, inputDims, element, value) {
    const dims = inputDims[0];
    const axis = normalizeAxis((layer.attrs as { axis: number }).axis, dims.length);
    const len = dims[axis];
    return `Gather layer "${layer.name}": index ${value} (element ${element} of the indices) is ` +
      `out of range for axis ${axis} of size ${len} (valid: ${-len} to ${len - 1})`;
  },
};

export const topk: CudaKernel = {
  unsupported(layer, manifest) {
    const at = layer.attrs as unknown as TopKAttrs;
    const dims = manifest?.tensors[layer.inputs[0]]?.dims;
    const len = dims ? dims[normalizeAxis(at.axis, dims.length)] : undefined;
    if (at.k > TOPK_MAX_CHUNKED_K && typeof len === "number" && len > TOPK_BUFFER) {
      return `k = ${at.k} over an axis of ${len}: the CUDA kernel takes k <= ${TOPK_MAX_CHUNKED_K} ` +
        `when the axis is longer than ${TOPK_BUFFER}`;
    }
    return undefined;
  },
  launch(a) {
    const at = a.layer.attrs as unknown as TopKAttrs;
    const x = a.inputs[0];
    const axis = topkAxis(x.dims, at.axis);
    const len = x.dims[axis];
    const outer = volume(x.dims, 0, axis), inner = volume(x.dims, axis + 1);
    if (outer * inner === 0) return;
    launch(
      a,
      "kiln_launch_topk",
      TOPK_PARAMS.pack({
        x: x.ptr,
        values: a.outputs[0].ptr,
        indices: a.outputs[1].ptr,
        outer,
        inner,
        len,
        k: at.k,
        op: at.op === "max" ? 0 : 1,
        dtype: DTYPE_CODE[x.dtype],
      }),
    );
  },
};

export const raggedSoftmax: CudaKernel = {
  launch(a) {
    const dims = a.inputs[0].dims;
    const len = dims[dims.length - 1];
    const rows = volume(dims, 0, dims.length - 1);
    if (rows === 0) return;
    launch(
      a,
      "kiln_launch_ragged_softmax",
      RAGGED_SOFTMAX_PARAMS.pack({
        x: a.inputs[0].ptr,
        bounds: a.inputs[1].ptr,
        y: a.outputs[0].ptr,
        error: a.error,
        rows,
        len,
      }),
    );
  },
  describeError(layer, inputDims, element, value) {
    const dims = inputDims[0];
    return `RaggedSoftMax layer "${layer.name}": bound ${value} of row ${element} is outside ` +
      `[0, ${dims[dims.length - 1]}] (the row length)`;
  },
};
