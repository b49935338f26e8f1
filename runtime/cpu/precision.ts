/**
 * Runs one layer of a plan in its precision on the CPU. FP32: the kernel as is. FP16: the FP32
 * kernel (FP32 arithmetic inside), its outputs stored as half values. INT8: the layer kind's
 * integer kernel (int8.ts), given its inputs' and outputs' scales and formats. The exact
 * rounding of each is in _quant.ts.
 */
import type { Manifest, ManifestLayer } from "../../plan/mod.ts";
import { KilnError } from "../../errors.ts";
import { CPU_INT8_KERNELS, type TensorFormat } from "./int8.ts";
import type { CpuKernel, CpuKernelArgs, HostTensor } from "./_kernel.ts";
import { roundArrayToHalf } from "./_quant.ts";

/** A tensor's storage format as the manifest records it (FP32 when absent). */
export function formatOf(t: Manifest["tensors"][number]): TensorFormat {
  return { precision: t.precision ?? "fp32", scale: t.scale };
}

export function runLayerKernel(
  layer: ManifestLayer,
  tensors: Manifest["tensors"],
  kernel: CpuKernel,
  args: CpuKernelArgs,
): void {
  if (layer.kind === "Reformat") {
    // Reformat copies dense arrays: views (plan/views.ts) go through dense copies.
    const outputs = args.outputs.map(dense);
    kernel({ ...args, inputs: args.inputs.map(dense), outputs });
    outputs.forEach((o, i) => {
      if (o !== args.outputs[i]) scatter(o, args.outputs[i]);
    });
    return;
  }
  if (layer.precision === "int8") {
    const int8 = CPU_INT8_KERNELS[layer.kind];
    if (!int8) {
      throw new KilnError(
        "UNSUPPORTED",
        `the CPU backend has no INT8 kernel for ${layer.kind} (INT8 kernels: ${
          Object.keys(CPU_INT8_KERNELS).join(", ")
        })`,
        { layer: layer.name },
      );
    }
    // The integer kernels address dense tensors: views (plan/views.ts) go through dense copies.
    const inputs = args.inputs.map(dense);
    const outputs = args.outputs.map(dense);
    int8({
      ...args,
      inputs,
      outputs,
      inputScales: layer.inputs.map((t) => tensors[t].scale),
      outputFormats: layer.outputs.map((t) => formatOf(tensors[t])),
    });
    outputs.forEach((o, i) => {
      if (o !== args.outputs[i]) scatter(o, args.outputs[i]);
    });
    return;
  }
  kernel(args);
  // An FP16 layer's float outputs hold half values (its weights were rounded at build time).
  layer.outputs.forEach((t, i) => {
    if (tensors[t].precision === "fp16" && tensors[t].dtype === "float32") {
      forEachItem(args.outputs[i], (a) => roundArrayToHalf(a));
    }
  });
}

/** A tensor that may be a view inside a wider one (plan/views.ts sets `batchStride`). */
type MaybeView = HostTensor & { batchStride?: number };

function itemSize(t: HostTensor): number {
  return t.dims.slice(1).reduce((a, b) => a * b, 1);
}

/** Calls f on each batch item's elements of a view, or once on a dense tensor's. */
function forEachItem(t: MaybeView, f: (a: Float32Array) => void): void {
  const data = t.data as Float32Array;
  if (t.batchStride === undefined) return f(data);
  const n = itemSize(t);
  for (let b = 0; b < t.dims[0]; b++) f(data.subarray(b * t.batchStride, b * t.batchStride + n));
}

function dense(t: MaybeView): HostTensor {
  if (t.batchStride === undefined) return t;
  const n = itemSize(t), out = new Float32Array(t.dims[0] * n);
  let b = 0;
  forEachItem(t, (a) => out.set(a, n * b++));
  return { data: out, dims: t.dims };
}

function scatter(from: HostTensor, to: HostTensor): void {
  const n = itemSize(to), src = from.data as Float32Array;
  let b = 0;
  forEachItem(to, (a) => a.set(src.subarray(n * b, n * ++b)));
}
