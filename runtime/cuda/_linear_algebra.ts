/**
 * CUDA kernel-table entries for the GEMM-shaped kinds added after the spine: MatrixMultiply
 * (batched, transposes, numpy-broadcast leading dims, bias and fused epilogue) and Deconvolution
 * (a gather over the taps that reach each output pixel: no atomics).
 */
import { volume } from "../../dsl/ir/dims.ts";
import { DECONVOLUTION_PARAMS, MATRIX_MULTIPLY_PARAMS, MAX_RANK } from "../../ffi/mod.ts";
import { KilnError } from "../../errors.ts";
import {
  type CudaKernel,
  type EpilogueAttrs,
  epilogueFields,
  float32Weights,
  launch,
} from "./_launch.ts";

/**
 * Element strides of an operand's matrices along the output's leading dims `lead`: its own
 * leading dims align to the right (numpy), a broadcast dim (size 1, or absent) strides 0.
 */
function matrixStrides(ownLead: number[], lead: number[], matrixElements: number): number[] {
  const strides = new Array<number>(lead.length).fill(0);
  let acc = matrixElements;
  for (let i = ownLead.length - 1; i >= 0; i--) {
    const o = lead.length - ownLead.length + i;
    strides[o] = ownLead[i] === 1 && lead[o] !== 1 ? 0 : acc;
    acc *= ownLead[i];
  }
  return strides;
}

interface MatMulAttrs extends EpilogueAttrs {
  transposeA: boolean;
  transposeB: boolean;
}

export const matrixMultiply: CudaKernel = {
  usesWorkspace: true,
  unsupported: float32Weights,
  launch(a) {
    const at = a.layer.attrs as unknown as MatMulAttrs;
    const [A, B] = a.inputs;
    const out = a.outputs[0].dims;
    const rank = out.length;
    const m = out[rank - 2], n = out[rank - 1];
    const aRows = A.dims[A.dims.length - 2], aCols = A.dims[A.dims.length - 1];
    const bRows = B.dims[B.dims.length - 2], bCols = B.dims[B.dims.length - 1];
    const k = at.transposeA ? aRows : aCols;
    // Leading dims of size 1 are dropped: they index nothing (and keep the rank within MAX_RANK).
    const lead = out.slice(0, -2);
    const aStrides = matrixStrides(A.dims.slice(0, -2), lead, aRows * aCols);
    const bStrides = matrixStrides(B.dims.slice(0, -2), lead, bRows * bCols);
    const keep = lead.map((_, i) => i).filter((i) => lead[i] !== 1);
    if (keep.length > MAX_RANK) {
      throw new KilnError(
        "UNSUPPORTED",
        `MatrixMultiply layer "${a.layer.name}": ${keep.length} leading dims above 1 (the CUDA kernel takes up to ${MAX_RANK})`,
        { layer: a.layer.name },
      );
    }
    launch(
      a,
      "kiln_launch_matrix_multiply",
      MATRIX_MULTIPLY_PARAMS.pack({
        a: A.ptr,
        b: B.ptr,
        bias: a.weights.bias ?? null,
        y: a.outputs[0].ptr,
        workspace: a.workspace.ptr,
        workspace_bytes: a.workspace.bytes,
        m,
        n,
        k,
        transpose_a: at.transposeA ? 1 : 0,
        transpose_b: at.transposeB ? 1 : 0,
        batch_rank: keep.length,
        batch_dims: keep.map((i) => lead[i]),
        a_strides: keep.map((i) => aStrides[i]),
        b_strides: keep.map((i) => bStrides[i]),
        ...epilogueFields(at, a.inputs),
      }),
    );
  },
};

interface DeconvAttrs extends EpilogueAttrs {
  kernel: [number, number];
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
  groups: number;
}

/** The widest kernel axis the CUDA deconvolution keeps its taps for (kMaxTaps). */
const DECONV_MAX_KERNEL = 16;

export const deconvolution: CudaKernel = {
  unsupported(layer) {
    const w = float32Weights(layer);
    if (w) return w;
    const k = (layer.attrs as unknown as DeconvAttrs).kernel;
    if (k[0] > DECONV_MAX_KERNEL || k[1] > DECONV_MAX_KERNEL) {
      return `kernel ${k[0]}x${k[1]} is wider than the CUDA kernel's ${DECONV_MAX_KERNEL} per axis`;
    }
    return undefined;
  },
  launch(a) {
    const at = a.layer.attrs as unknown as DeconvAttrs;
    const [n, c, h, w] = a.inputs[0].dims;
    const [, k, oh, ow] = a.outputs[0].dims;
    if (volume(a.outputs[0].dims) === 0) return;
    launch(
      a,
      "kiln_launch_deconvolution",
      DECONVOLUTION_PARAMS.pack({
        x: a.inputs[0].ptr,
        w: a.weights.weights,
        bias: a.weights.bias ?? null,
        y: a.outputs[0].ptr,
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
      }),
    );
  },
};
