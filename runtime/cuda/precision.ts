/**
 * Reduced precision on the CUDA backend: the Reformat kernel-table entry and the FP16 / INT8
 * dispatch of Convolution and FullyConnected to the tensor-core kernels of
 * cuda/src/kernels/precision.cu.
 *
 * Storage is the CPU's (runtime/cpu/_quant.ts): a tensor in FP16 or INT8 keeps its float32 slot,
 * holding exactly the values of its format. The kernels convert on load (exactly) and write their
 * output's format, so every FP32 kernel can read any tensor and views keep their float strides;
 * what the reduced formats buy here is tensor-core arithmetic, not memory traffic.
 */
import { volume } from "../../dsl/ir/dims.ts";
import type { Precision } from "../../dsl/ir/graph.ts";
import { check, type NativeLibrary } from "../../ffi/mod.ts";
import { KilnError } from "../../errors.ts";
import type { Manifest, ManifestLayer } from "../../plan/mod.ts";
import { type CudaKernel, offsetPointer } from "./_launch.ts";

/** Format codes of kiln.h (KILN_F32, KILN_F16, KILN_I8). */
const FORMAT_CODE: Record<Precision, number> = { fp32: 0, fp16: 1, int8: 2 };

/** Layer kinds with reduced-precision kernels on the CUDA backend, by precision. */
export const CUDA_REDUCED_PRECISION_KINDS: Record<"fp16" | "int8", ReadonlySet<string>> = {
  fp16: new Set([
    "Convolution",
    "FullyConnected",
    "Activation",
    "Concatenation",
    "ElementWise",
    "LRN",
    "Pooling",
    "Scale",
    "Shuffle",
    "SoftMax",
  ]),
  int8: new Set(["Convolution", "FullyConnected"]),
};

/**
 * How a layer runs in FP16 on the GPU: on tensor cores (Convolution, FullyConnected); "exact":
 * the FP32 kernel as is, because its outputs of half values are half values (max pooling, ReLU,
 * data movement); "rounded": the FP32 kernel (FP32 internals, as the CPU), then its outputs
 * rounded to half in place by one more launch. Undefined: no FP16 on the GPU.
 */
export function cudaFp16Mode(
  kind: string,
  attrs: Record<string, unknown>,
): "tensor-core" | "exact" | "rounded" | undefined {
  if (!CUDA_REDUCED_PRECISION_KINDS.fp16.has(kind)) return undefined;
  if (kind === "Convolution" || kind === "FullyConnected") return "tensor-core";
  if (kind === "Concatenation" || kind === "Shuffle") return "exact";
  if (kind === "Pooling" && attrs.type === "max") return "exact";
  if (kind === "Activation" && attrs.type === "relu") return "exact";
  return "rounded";
}

interface LayerFormats {
  xScale: number;
  yFormat: number;
  yScale: number;
}

/**
 * Each reduced layer's input step and output format, found at load (`unsupported` sees the
 * manifest, `launch` does not). Keyed by the layer's attrs object, which the backend's per-launch
 * copies of a layer share.
 */
const formatsByLayer = new WeakMap<object, LayerFormats>();

function tensorFormat(t: Manifest["tensors"][number]): Precision {
  return t.precision ?? "fp32";
}

/** Bytes an INT8 launch needs: the per-channel scales (padded to 256) and the int8 weights. */
export function int8WorkspaceBytes(rows: number, weightCount: number): number {
  return Math.ceil((rows * 4) / 256) * 256 + weightCount;
}

function outputChannels(layer: ManifestLayer, manifest: Manifest): number {
  if (layer.kind === "FullyConnected") return (layer.attrs as { outputs: number }).outputs;
  const d = manifest.tensors[layer.outputs[0]].dims[1];
  return typeof d === "number" ? d : 0;
}

function checkFormats(layer: ManifestLayer, manifest: Manifest): string | undefined {
  const p = layer.precision;
  if (p === "fp32") return undefined;
  if (!CUDA_REDUCED_PRECISION_KINDS[p].has(layer.kind)) {
    return `the CUDA backend has no ${p.toUpperCase()} kernel for ${layer.kind}`;
  }
  const x = manifest.tensors[layer.inputs[0]], y = manifest.tensors[layer.outputs[0]];
  const yFormat = tensorFormat(y);
  if (p === "int8") {
    if (!(x.scale !== undefined && x.scale > 0)) return `INT8 input "${x.name}" has no scale`;
    if ((layer.attrs as { residual?: unknown }).residual) return "INT8 kernels take no residual";
  }
  if (yFormat === "int8" && !(y.scale !== undefined && y.scale > 0)) {
    return `INT8 output "${y.name}" has no scale`;
  }
  formatsByLayer.set(layer.attrs, {
    xScale: p === "int8" ? x.scale! : 0,
    yFormat: FORMAT_CODE[yFormat],
    yScale: y.scale ?? 0,
  });
  return undefined;
}

/** `lib` with the kind's FP32 launch symbol sending the same parameters to the _lowp launch. */
function lowpLibrary(
  lib: NativeLibrary,
  layer: ManifestLayer,
  f: LayerFormats,
): NativeLibrary {
  const conv = layer.kind === "Convolution";
  const symbol = conv ? "kiln_launch_convolution" : "kiln_launch_fully_connected";
  const precision = FORMAT_CODE[layer.precision];
  const symbols = Object.create(lib.symbols, {
    [symbol]: {
      value: (params: Uint8Array<ArrayBuffer>, stream: Deno.PointerValue) =>
        conv
          ? lib.symbols.kiln_lowp_convolution_launch(
            params,
            precision,
            f.xScale,
            f.yFormat,
            f.yScale,
            stream,
          )
          : lib.symbols.kiln_lowp_fully_connected_launch(
            params,
            precision,
            f.xScale,
            f.yFormat,
            f.yScale,
            stream,
          ),
    },
  });
  return { path: lib.path, symbols };
}

/**
 * A Convolution or FullyConnected kernel-table entry that runs FP16 and INT8 layers on the
 * tensor-core kernels (the same parameter struct, another launch) and FP32 layers as `base`.
 */
export function withReducedPrecision(base: CudaKernel): CudaKernel {
  return {
    ...base,
    usesWorkspace: true,
    workspaceBytes(layer, manifest, gemmBytes) {
      const own = base.workspaceBytes?.(layer, manifest, gemmBytes) ?? 0;
      if (layer.precision !== "int8") return own;
      const count = layer.weights.weights?.count ?? 0;
      return Math.max(own, int8WorkspaceBytes(outputChannels(layer, manifest), count));
    },
    unsupported(layer, manifest) {
      const why = base.unsupported?.(layer, manifest);
      if (why || layer.precision === "fp32") return why;
      if (!manifest) return "a reduced-precision layer needs the plan's tensor formats";
      return checkFormats(layer, manifest);
    },
    launch(a) {
      if (a.layer.precision === "fp32") return base.launch(a);
      const f = formatsByLayer.get(a.layer.attrs);
      if (!f) {
        throw new KilnError(
          "PLAN_INVALID",
          `${a.layer.precision} layer launched before the plan's formats were checked`,
          { layer: a.layer.name },
        );
      }
      // Tactics are FP32 implementations: a reduced layer runs the tensor-core kernel.
      base.launch({
        ...a,
        layer: { ...a.layer, tactic: undefined },
        lib: lowpLibrary(a.lib, a.layer, f),
      });
    },
  };
}

/** Reformat: y holds x's values in the target format (a copy when widening). */
export const reformat: CudaKernel = {
  unsupported(layer) {
    const to = (layer.attrs as { to?: string }).to;
    return to === "fp32" || to === "fp16" || to === "int8"
      ? undefined
      : `unknown target format ${String(to)}`;
  },
  launch(a) {
    const at = a.layer.attrs as { to: Precision; scale?: number };
    const x = a.inputs[0], y = a.outputs[0];
    if (x.batchStride !== undefined || y.batchStride !== undefined || x.dtype !== "float32") {
      throw new KilnError("PLAN_INVALID", "Reformat reads and writes dense float32 tensors", {
        layer: a.layer.name,
      });
    }
    const st = a.lib.symbols.kiln_lowp_reformat_launch(
      x.ptr,
      y.ptr,
      BigInt(volume(y.dims)),
      FORMAT_CODE[at.to],
      at.scale ?? 0,
      a.stream.handle,
    );
    check(a.lib, st, `kiln_lowp_reformat_launch (layer "${a.layer.name}")`);
  },
};

/**
 * An entry for a kind whose FP16 is its FP32 kernel (see cudaFp16Mode): "rounded" layers get
 * their float outputs rounded to half in place (per batch item for a view).
 */
export function withFp16Outputs(base: CudaKernel): CudaKernel {
  return {
    ...base,
    unsupported(layer, manifest) {
      const why = base.unsupported?.(layer, manifest);
      if (why || layer.precision === "fp32") return why;
      if (layer.precision === "int8" || !cudaFp16Mode(layer.kind, layer.attrs)) {
        return `the CUDA backend has no ${layer.precision.toUpperCase()} kernel for ${layer.kind}`;
      }
      return undefined;
    },
    launch(a) {
      base.launch(a);
      if (a.layer.precision !== "fp16" || cudaFp16Mode(a.layer.kind, a.layer.attrs) !== "rounded") {
        return;
      }
      for (const y of a.outputs) {
        if (y.dtype !== "float32") continue;
        const item = volume(y.dims.slice(1));
        const parts = y.batchStride === undefined ? [[y.ptr, volume(y.dims)] as const] : Array.from(
          { length: y.dims[0] },
          (_, b) => [offsetPointer(y.ptr, b * y.batchStride! * 4), item] as const,
        );
        for (const [ptr, count] of parts) {
          const st = a.lib.symbols.kiln_lowp_reformat_launch(
            ptr,
            ptr,
            BigInt(count),
            FORMAT_CODE.fp16,
            0,
            a.stream.handle,
          );
          check(a.lib, st, `kiln_lowp_reformat_launch (FP16 outputs of "${a.layer.name}")`);
        }
      }
    },
  };
}
