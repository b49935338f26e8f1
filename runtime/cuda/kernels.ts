/**
 * The CUDA kernel table: one entry per layer kind, turning a manifest layer and the concrete
 * shapes of one batch into a packed parameter struct and a launch on the context's stream.
 * A kind missing here is reported by `supports()` and named by the builder.
 *
 * Adding a kind: its kiln.h struct and launch, its mirror in ffi/structs.ts and ffi/symbols.ts,
 * and an entry below.
 */
import { normalizeAxis, stridesOf, volume } from "../../dsl/ir/dims.ts";
import { activationParams, type ActivationSpec } from "../../dsl/layers/_epilogue.ts";
import { poolGeometry, type PoolingAttrs } from "../../dsl/layers/pooling.ts";
import { KilnError } from "../../errors.ts";
import {
  ACTIVATION_CODE,
  ACTIVATION_PARAMS,
  CONVOLUTION_PARAMS,
  DTYPE_CODE,
  ELEMENTWISE_CODE,
  ELEMENTWISE_PARAMS,
  FULLY_CONNECTED_PARAMS,
  IDENTITY_PARAMS,
  LRN_PARAMS,
  MAX_RANK,
  POOL_CODE,
  POOLING_PARAMS,
  REDUCE_CODE,
  REDUCE_PARAMS,
  SCALE_MODE_CODE,
  SCALE_PARAMS,
  SOFTMAX_PARAMS,
  UNARY_CODE,
  UNARY_PARAMS,
} from "../../ffi/mod.ts";
import { type LrnAttrs, lrnChannelAxis } from "../../dsl/layers/lrn.ts";
import { type ReduceAttrs, reduceAxes } from "../../dsl/layers/reduce.ts";
import type { UnaryAttrs } from "../../dsl/layers/unary.ts";
import {
  type CudaKernel,
  type EpilogueAttrs,
  epilogueFields,
  float32Weights,
  launch,
} from "./_launch.ts";
import { concatenation, constant, padding, shuffle } from "./_movement.ts";
import { fusedElementwise, fusedMlp } from "./_fused.ts";
import { withTactics } from "./tactics.ts";
import { deconvolution, matrixMultiply } from "./_linear_algebra.ts";
import { plugin } from "./_plugin.ts";
import { gather, raggedSoftmax, topk } from "./_selection.ts";
import { rnnV2 } from "./_rnn.ts";
import { reformat, withFp16Outputs, withReducedPrecision } from "./precision.ts";

export type { CudaKernel, LaunchArgs, LaunchTensor } from "./_launch.ts";

/** Strides reading `inDims` broadcast to `outDims` (numpy rules: 0 along broadcast dims). */
function broadcastStrides(inDims: number[], outDims: number[]): number[] {
  const rank = outDims.length;
  const strides = new Array<number>(rank).fill(0);
  let acc = 1;
  for (let i = inDims.length - 1; i >= 0; i--) {
    const o = rank - inDims.length + i;
    strides[o] = inDims[i] === 1 && outDims[o] !== 1 ? 0 : acc;
    acc *= inDims[i];
  }
  return strides;
}

const activation: CudaKernel = {
  launch(a) {
    const spec = a.layer.attrs as ActivationSpec;
    const { alpha, beta } = activationParams(spec);
    launch(
      a,
      "kiln_launch_activation",
      ACTIVATION_PARAMS.pack({
        x: a.inputs[0].ptr,
        y: a.outputs[0].ptr,
        count: volume(a.outputs[0].dims),
        act: ACTIVATION_CODE[spec.type],
        alpha,
        beta,
      }),
    );
  },
};

interface ConvAttrs extends EpilogueAttrs {
  kernel: [number, number];
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
  groups: number;
}

const convolution: CudaKernel = {
  usesWorkspace: true,
  unsupported: float32Weights,
  launch(a) {
    const at = a.layer.attrs as unknown as ConvAttrs;
    const [n, c, h, w] = a.inputs[0].dims;
    const [, k, oh, ow] = a.outputs[0].dims;
    launch(
      a,
      "kiln_launch_convolution",
      CONVOLUTION_PARAMS.pack({
        x: a.inputs[0].ptr,
        w: a.weights.weights,
        bias: a.weights.bias ?? null,
        y: a.outputs[0].ptr,
        workspace: a.workspace.ptr,
        workspace_bytes: a.workspace.bytes,
        n,
        c,
        in_h: h,
        in_w: w,
        k,
        out_h: oh,
        out_w: ow,
        kernel_h: at.kernel[0],
        kernel_w: at.kernel[1],
        stride_h: at.stride[0],
        stride_w: at.stride[1],
        pad_h: at.padding[0],
        pad_w: at.padding[1],
        dilation_h: at.dilation[0],
        dilation_w: at.dilation[1],
        groups: at.groups,
        ...epilogueFields(at, a.inputs),
        x_batch_stride: a.inputs[0].batchStride ?? 0,
        y_batch_stride: a.outputs[0].batchStride ?? 0,
      }),
    );
  },
};

const fullyConnected: CudaKernel = {
  usesWorkspace: true,
  unsupported: float32Weights,
  launch(a) {
    const at = a.layer.attrs as unknown as EpilogueAttrs & { outputs: number; axis: number };
    const dims = a.inputs[0].dims;
    launch(
      a,
      "kiln_launch_fully_connected",
      FULLY_CONNECTED_PARAMS.pack({
        x: a.inputs[0].ptr,
        w: a.weights.weights,
        bias: a.weights.bias ?? null,
        y: a.outputs[0].ptr,
        workspace: a.workspace.ptr,
        workspace_bytes: a.workspace.bytes,
        m: volume(dims, 0, at.axis),
        n: at.outputs,
        k: volume(dims, at.axis),
        ...epilogueFields(at, a.inputs),
      }),
    );
  },
};

const pooling: CudaKernel = {
  launch(a) {
    const at = a.layer.attrs as unknown as PoolingAttrs;
    const [n, c, h, w] = a.inputs[0].dims;
    const [, , oh, ow] = a.outputs[0].dims;
    const g = poolGeometry(at, h, w);
    launch(
      a,
      "kiln_launch_pooling",
      POOLING_PARAMS.pack({
        x: a.inputs[0].ptr,
        y: a.outputs[0].ptr,
        planes: n * c,
        in_h: h,
        in_w: w,
        out_h: oh,
        out_w: ow,
        window_h: g.window[0],
        window_w: g.window[1],
        stride_h: g.stride[0],
        stride_w: g.stride[1],
        pad_h: g.pad[0],
        pad_w: g.pad[1],
        post_pad_h: g.post[0],
        post_pad_w: g.post[1],
        type: POOL_CODE[at.type],
        exclude_padding: at.excludePadding ? 1 : 0,
        channels: c,
        y_batch_stride: a.outputs[0].batchStride ?? 0,
      }),
    );
  },
};

const softmax: CudaKernel = {
  launch(a) {
    const at = a.layer.attrs as { axis: number; log: boolean };
    const dims = a.inputs[0].dims;
    const axis = normalizeAxis(at.axis, dims.length);
    launch(
      a,
      "kiln_launch_softmax",
      SOFTMAX_PARAMS.pack({
        x: a.inputs[0].ptr,
        y: a.outputs[0].ptr,
        outer: volume(dims, 0, axis),
        len: dims[axis],
        inner: volume(dims, axis + 1),
        log: at.log ? 1 : 0,
      }),
    );
  },
};

const elementwise: CudaKernel = {
  unsupported(layer) {
    return layer.inputs.length < 2 ? "ElementWise needs two or more inputs" : undefined;
  },
  launch(a) {
    const op = ELEMENTWISE_CODE[(a.layer.attrs as { op: keyof typeof ELEMENTWISE_CODE }).op];
    const out = a.outputs[0];
    if (out.dims.length > MAX_RANK) {
      throw new KilnError(
        "UNSUPPORTED",
        `ElementWise of rank ${out.dims.length} (the CUDA kernel takes up to ${MAX_RANK})`,
        { layer: a.layer.name },
      );
    }
    // Left fold like the CPU: y = in0 op in1, then y = y op in_k (y read in place).
    const full = broadcastStrides(out.dims, out.dims);
    for (let k = 1; k < a.inputs.length; k++) {
      const left = k === 1 ? a.inputs[0] : out;
      launch(
        a,
        "kiln_launch_elementwise",
        ELEMENTWISE_PARAMS.pack({
          a: left.ptr,
          b: a.inputs[k].ptr,
          y: out.ptr,
          op,
          rank: out.dims.length,
          out_dims: out.dims,
          a_strides: k === 1 ? broadcastStrides(left.dims, out.dims) : full,
          b_strides: broadcastStrides(a.inputs[k].dims, out.dims),
        }),
      );
    }
  },
};

const scale: CudaKernel = {
  unsupported: float32Weights,
  launch(a) {
    const at = a.layer.attrs as { mode: keyof typeof SCALE_MODE_CODE; channelAxis: number };
    const dims = a.inputs[0].dims;
    const count = volume(dims);
    const perItem = Object.values(a.layer.weights)[0]?.count ?? 1;
    launch(
      a,
      "kiln_launch_scale",
      SCALE_PARAMS.pack({
        x: a.inputs[0].ptr,
        y: a.outputs[0].ptr,
        scale: a.weights.scale ?? null,
        shift: a.weights.shift ?? null,
        power: a.weights.power ?? null,
        count,
        inner: at.mode === "channel" ? volume(dims, at.channelAxis + 1) : 1,
        per_item: at.mode === "elementwise" ? perItem : 1,
        mode: SCALE_MODE_CODE[at.mode],
        channels: at.mode === "channel" ? dims[at.channelAxis] : 1,
      }),
    );
  },
};

const identity: CudaKernel = {
  launch(a) {
    launch(
      a,
      "kiln_launch_identity",
      IDENTITY_PARAMS.pack({
        x: a.inputs[0].ptr,
        y: a.outputs[0].ptr,
        count: volume(a.outputs[0].dims),
        src_dtype: DTYPE_CODE[a.inputs[0].dtype],
        dst_dtype: DTYPE_CODE[a.outputs[0].dtype],
      }),
    );
  },
};

const unary: CudaKernel = {
  launch(a) {
    const x = a.inputs[0];
    launch(
      a,
      "kiln_launch_unary",
      UNARY_PARAMS.pack({
        x: x.ptr,
        y: a.outputs[0].ptr,
        count: volume(x.dims),
        op: UNARY_CODE[(a.layer.attrs as UnaryAttrs).op],
        dtype: DTYPE_CODE[x.dtype],
      }),
    );
  },
};

const reduce: CudaKernel = {
  launch(a) {
    const at = a.layer.attrs as ReduceAttrs;
    const x = a.inputs[0];
    const reduced = new Set(reduceAxes(x.dims, at.axes));
    // Merge neighbouring axes that are both kept or both reduced, then split the two kinds.
    const sizes: number[] = [], isReduced: boolean[] = [];
    x.dims.forEach((d, i) => {
      const r = reduced.has(i);
      if (sizes.length && isReduced[isReduced.length - 1] === r) sizes[sizes.length - 1] *= d;
      else sizes.push(d), isReduced.push(r);
    });
    const strides = stridesOf(sizes);
    const pick = (r: boolean) => sizes.map((_, i) => i).filter((i) => isReduced[i] === r);
    const kept = pick(false), red = pick(true);
    launch(
      a,
      "kiln_launch_reduce",
      REDUCE_PARAMS.pack({
        x: x.ptr,
        y: a.outputs[0].ptr,
        op: REDUCE_CODE[at.op],
        dtype: DTYPE_CODE[x.dtype],
        kept_rank: kept.length,
        reduced_rank: red.length,
        kept_dims: kept.map((i) => sizes[i]),
        kept_strides: kept.map((i) => strides[i]),
        reduced_dims: red.map((i) => sizes[i]),
        reduced_strides: red.map((i) => strides[i]),
      }),
    );
  },
};

const lrn: CudaKernel = {
  launch(a) {
    const at = a.layer.attrs as LrnAttrs;
    const dims = a.inputs[0].dims;
    const axis = lrnChannelAxis(dims.length);
    launch(
      a,
      "kiln_launch_lrn",
      LRN_PARAMS.pack({
        x: a.inputs[0].ptr,
        y: a.outputs[0].ptr,
        outer: volume(dims, 0, axis),
        channels: dims[axis],
        inner: volume(dims, axis + 1),
        window: at.window,
        alpha: at.alpha,
        beta: at.beta,
        k: at.k,
      }),
    );
  },
};

export const CUDA_KERNELS: Record<string, CudaKernel> = {
  Activation: withFp16Outputs(activation),
  Concatenation: withFp16Outputs(concatenation),
  Constant: constant,
  Convolution: withReducedPrecision(withTactics(convolution, "Convolution")),
  Deconvolution: deconvolution,
  ElementWise: withFp16Outputs(elementwise),
  FullyConnected: withReducedPrecision(withTactics(fullyConnected, "FullyConnected")),
  FusedElementwise: fusedElementwise,
  FusedMlp: fusedMlp,
  Gather: gather,
  Identity: identity,
  LRN: withFp16Outputs(lrn),
  MatrixMultiply: matrixMultiply,
  Padding: padding,
  Plugin: plugin,
  Pooling: withFp16Outputs(pooling),
  RaggedSoftMax: raggedSoftmax,
  Reduce: reduce,
  Reformat: reformat,
  RNNv2: rnnV2,
  Scale: withFp16Outputs(scale),
  Shuffle: withFp16Outputs(shuffle),
  SoftMax: withFp16Outputs(softmax),
  TopK: topk,
  Unary: unary,
};
