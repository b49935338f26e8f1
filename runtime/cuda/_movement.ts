/**
 * Kernel-table entries that move data without arithmetic: Shuffle (transposes around a
 * reshape), Padding, Concatenation (all through kiln_launch_copy) and Constant (a device copy
 * from the weights). A plain reshape is one device-to-device copy.
 */
import { stridesOf, volume } from "../../dsl/ir/dims.ts";
import { bytesPerElement } from "../../dsl/ir/dtype.ts";
import { type PaddingAttrs, padsOf } from "../../dsl/layers/padding.ts";
import type { ShuffleAttrs } from "../../dsl/layers/shuffle.ts";
import { COPY_PARAMS, MAX_RANK, PAD_MODE_CODE } from "../../ffi/mod.ts";
import { KilnError } from "../../errors.ts";
import { type CudaKernel, launch, type LaunchArgs, offsetPointer } from "./_launch.ts";

interface CopySpec {
  x: Deno.PointerValue;
  y: Deno.PointerValue;
  elementBytes: number;
  /** The iteration space. */
  dims: number[];
  outStrides: number[];
  inStrides: number[];
  /** One stage: the input's dims and the padding before each (default: dims, 0). */
  inDims?: number[];
  pre?: number[];
  mode?: keyof typeof PAD_MODE_CODE;
  fillBits?: number;
  /** Two stages: the row-major space that inStrides index, and its input strides. */
  midDims?: number[];
  midStrides?: number[];
}

function copy(a: LaunchArgs, s: CopySpec): void {
  if (s.dims.length > MAX_RANK || (s.midDims?.length ?? 0) > MAX_RANK) {
    throw new KilnError(
      "UNSUPPORTED",
      `${a.layer.kind} of rank ${s.dims.length} (the CUDA kernel takes up to ${MAX_RANK})`,
      { layer: a.layer.name },
    );
  }
  launch(
    a,
    "kiln_launch_copy",
    COPY_PARAMS.pack({
      x: s.x,
      y: s.y,
      rank: s.dims.length,
      mid_rank: s.midDims?.length ?? 0,
      element_bytes: s.elementBytes,
      mode: PAD_MODE_CODE[s.mode ?? "constant"],
      fill_bits: s.fillBits ?? 0,
      dims: s.dims,
      out_strides: s.outStrides,
      in_strides: s.inStrides,
      in_dims: s.inDims ?? s.dims,
      pre: s.pre ?? [],
      mid_dims: s.midDims ?? [],
      mid_strides: s.midStrides ?? [],
    }),
  );
}

function isIdentity(perm: readonly number[] | undefined): boolean {
  return !perm || perm.every((p, i) => p === i);
}

export const shuffle: CudaKernel = {
  launch(a) {
    const at = a.layer.attrs as ShuffleAttrs;
    const x = a.inputs[0], y = a.outputs[0];
    const elementBytes = bytesPerElement(x.dtype);
    const first = at.firstTranspose, second = at.secondTranspose;
    const xStrides = stridesOf(x.dims);
    if (isIdentity(second)) {
      if (isIdentity(first)) {
        a.stream.copyAsync(y.ptr, x.ptr, volume(x.dims) * elementBytes);
        return;
      }
      const dims = first!.map((p) => x.dims[p]);
      copy(a, {
        x: x.ptr,
        y: y.ptr,
        elementBytes,
        dims,
        outStrides: stridesOf(dims),
        inStrides: first!.map((p) => xStrides[p]),
      });
      return;
    }
    // y = second(reshape(first(x))): walk y, index the reshaped row-major space through the
    // second transpose, and (if there is one) undo the first transpose to reach x.
    const reshaped = new Array<number>(y.dims.length);
    second!.forEach((p, i) => (reshaped[p] = y.dims[i]));
    const rStrides = stridesOf(reshaped);
    const spec: CopySpec = {
      x: x.ptr,
      y: y.ptr,
      elementBytes,
      dims: y.dims,
      outStrides: stridesOf(y.dims),
      inStrides: second!.map((p) => rStrides[p]),
    };
    if (!isIdentity(first)) {
      spec.midDims = first!.map((p) => x.dims[p]);
      spec.midStrides = first!.map((p) => xStrides[p]);
    }
    copy(a, spec);
  },
};

const fillScratch = new DataView(new ArrayBuffer(4));

export const padding: CudaKernel = {
  launch(a) {
    const at = a.layer.attrs as PaddingAttrs;
    const x = a.inputs[0], y = a.outputs[0];
    if (x.dtype === "float32") fillScratch.setFloat32(0, at.value, true);
    else fillScratch.setInt32(0, at.value, true);
    // Either side may be a view inside a wider tensor (plan/views.ts): dim 0 is then strided.
    const outStrides = stridesOf(y.dims), inStrides = stridesOf(x.dims);
    if (y.batchStride !== undefined) outStrides[0] = y.batchStride;
    if (x.batchStride !== undefined) inStrides[0] = x.batchStride;
    copy(a, {
      x: x.ptr,
      y: y.ptr,
      elementBytes: bytesPerElement(x.dtype),
      dims: y.dims,
      outStrides,
      inStrides,
      inDims: x.dims,
      pre: padsOf(x.dims.length, at).pre,
      mode: at.mode,
      fillBits: fillScratch.getInt32(0, true),
    });
  },
};

export const concatenation: CudaKernel = {
  launch(a) {
    const out = a.outputs[0];
    const rank = out.dims.length;
    const attrAxis = (a.layer.attrs as { axis: number }).axis;
    const axis = attrAxis < 0 ? attrAxis + rank : attrAxis;
    const inner = volume(out.dims, axis + 1);
    const elementBytes = bytesPerElement(out.dtype);
    const outStrides = stridesOf(out.dims);
    let at = 0;
    for (const input of a.inputs) {
      // Each input fills the slab [at, at + its axis length) of the output's axis.
      copy(a, {
        x: input.ptr,
        y: offsetPointer(out.ptr, at * inner * elementBytes),
        elementBytes,
        dims: input.dims,
        outStrides,
        inStrides: stridesOf(input.dims),
      });
      at += input.dims[axis];
    }
  },
};

export const constant: CudaKernel = {
  launch(a) {
    const ref = a.layer.weights.values;
    a.stream.copyAsync(a.outputs[0].ptr, a.weights.values, ref.count * bytesPerElement(ref.dtype));
  },
};
