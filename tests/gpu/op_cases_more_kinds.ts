/**
 * Op-harness cases for MatrixMultiply, Gather, TopK, Deconvolution, RaggedSoftMax and Plugin
 * (merged into OP_CASES): shapes and attributes chosen to reach each kernel path (GEMV over
 * [K×N] and [N×K] B, the tiled GEMM with each transpose, split-K, broadcast batch dims; gather
 * unit widths; TopK argbest, one-pass and streamed sorts, ties; deconvolution strides, groups,
 * dilation, output padding, epilogues). Index and bound inputs are drawn inside their range.
 */
import { type Dim, N } from "../../dsl/ir/dims.ts";
import type { HostArray } from "../../dsl/ir/dtype.ts";
import type { Tensor } from "../../dsl/ir/graph.ts";
import { registerPlugin } from "../../dsl/layers/plugin.ts";
import { ACTIVATION_CODE, ACTIVATION_PARAMS, check, loadLibrary } from "../../ffi/mod.ts";
import { randomArray } from "../_util.ts";
import type { OpCase } from "./op_cases.ts";

const w = (n: number, r: () => number) => randomArray(n, r, -1, 1);

/** Random int32 in [lo, hi]. */
function ints(n: number, r: () => number, lo: number, hi: number): Int32Array {
  return Int32Array.from({ length: n }, () => lo + Math.floor(r() * (hi - lo + 1)));
}

interface MatMulSpec {
  a: Dim[];
  b: Dim[];
  transposeA?: boolean;
  transposeB?: boolean;
  bias?: number;
  activation?: { type: string; alpha?: number; beta?: number };
  residual?: { mode: "pre" | "post"; dims: Dim[] };
}

function matmul(name: string, s: MatMulSpec, maxBatch = 6): OpCase {
  return {
    name,
    maxBatch,
    build(net, r) {
      const inputs: Tensor[] = [net.input("a", s.a), net.input("b", s.b)];
      const args: Record<string, unknown> = {
        transposeA: s.transposeA ?? false,
        transposeB: s.transposeB ?? false,
      };
      if (s.bias) args.bias = w(s.bias, r);
      if (s.activation) args.activation = s.activation;
      if (s.residual) {
        inputs.push(net.input("residual", s.residual.dims));
        args.residual = s.residual.mode;
      }
      net.markOutput(net.addMatrixMultiply(inputs, args as never).output(), "y");
    },
  };
}

interface GatherSpec {
  data: Dim[];
  dtype?: "float32" | "int32";
  indices: Dim[];
  axis: number;
  /** Data as a Constant layer of these dims instead of an input. */
  constant?: boolean;
}

function gather(name: string, s: GatherSpec): OpCase {
  const rank = s.data.length;
  const len = s.data[(s.axis + rank) % rank] as number;
  return {
    name,
    maxBatch: 5,
    build(net, r) {
      const data = s.constant
        ? net.addConstant([], { dims: s.data as number[], values: w(volumeOf(s.data), r) } as never)
          .output()
        : net.input("data", s.data, s.dtype ?? "float32");
      const indices = net.input("indices", s.indices, "int32");
      net.markOutput(data.gather(indices, { axis: s.axis }), "y");
    },
    // Negative and positive indices, every one in range.
    input: (name, _dtype, n, r) => name === "indices" ? ints(n, r, -len, len - 1) : undefined,
    range: s.dtype === "int32" ? [-1000, 1000] : undefined,
  };
}

function volumeOf(dims: Dim[]): number {
  return dims.reduce<number>((a, d) => a * (d === N ? 1 : d), 1);
}

function topk(
  name: string,
  dims: Dim[],
  attrs: { op: "max" | "min"; k: number; axis: number },
  extra: { dtype?: "int32"; levels?: number; maxBatch?: number } = {},
): OpCase {
  return {
    name,
    maxBatch: extra.maxBatch ?? 5,
    build(net) {
      const layer = net.addTopK(net.input("x", dims, extra.dtype ?? "float32"), attrs);
      net.markOutput(layer.output(0), "values");
      net.markOutput(layer.output(1), "indices");
    },
    // `levels` distinct values make many ties (order: lower index first).
    input: extra.levels
      ? (_name, _dtype, n, r) =>
        Float32Array.from({ length: n }, () => Math.floor(r() * extra.levels!) - 1.5)
      : undefined,
    range: extra.dtype === "int32" ? [-4, 4] : undefined,
  };
}

interface DeconvSpec {
  c: number;
  h: number;
  w: number;
  outputs: number;
  kernel: [number, number];
  stride?: [number, number];
  padding?: [number, number];
  dilation?: [number, number];
  outputPadding?: [number, number];
  groups?: number;
  bias?: boolean;
  activation?: { type: string; alpha?: number; beta?: number };
  residual?: "pre" | "post";
}

function deconv(name: string, s: DeconvSpec): OpCase {
  const stride = s.stride ?? [1, 1], padding = s.padding ?? [0, 0];
  const dilation = s.dilation ?? [1, 1], outPad = s.outputPadding ?? [0, 0];
  const out = [s.h, s.w].map((size, i) =>
    (size - 1) * stride[i] - 2 * padding[i] + dilation[i] * (s.kernel[i] - 1) + 1 + outPad[i]
  );
  return {
    name,
    maxBatch: 5,
    build(net, r) {
      const g = s.groups ?? 1;
      const args: Record<string, unknown> = {
        outputs: s.outputs,
        kernel: s.kernel,
        stride,
        padding,
        dilation,
        outputPadding: outPad,
        groups: g,
        weights: w(s.c * (s.outputs / g) * s.kernel[0] * s.kernel[1], r),
      };
      if (s.bias) args.bias = w(s.outputs, r);
      if (s.activation) args.activation = s.activation;
      const inputs: Tensor[] = [net.input("x", [N, s.c, s.h, s.w])];
      if (s.residual) {
        inputs.push(net.input("residual", [N, s.outputs, out[0], out[1]]));
        args.residual = s.residual;
      }
      net.markOutput(net.addDeconvolution(inputs, args as never).output(), "y");
    },
  };
}

function ragged(name: string, dims: Dim[]): OpCase {
  const len = dims[dims.length - 1] as number;
  return {
    name,
    maxBatch: 6,
    build(net) {
      const x = net.input("x", dims);
      const bounds = net.input("bounds", [...dims.slice(0, -1), 1], "int32");
      net.markOutput(x.raggedSoftmax(bounds), "y");
    },
    // Every bound from 0 (an all-zero row) to the full length.
    input: (name, _dtype, n, r) => name === "bounds" ? ints(n, r, 0, len) : undefined,
    range: [-4, 4],
  };
}

/**
 * A plugin with both implementations: y = clip(x, min, max). Its CUDA side enqueues Kiln's own
 * activation kernel on the stream it is given (a real stream launch, captured into the graph).
 */
const clipPlugin = {
  name: "GpuTestClip",
  version: "1",
  params: {
    safeParse(raw: unknown) {
      const p = raw as { min?: number; max?: number };
      return { success: true as const, data: { min: p.min ?? -0.5, max: p.max ?? 0.5 } };
    },
  },
  inputs: { min: 1, max: 1 },
  inferShape: (inputs: readonly { dims: Dim[]; dtype: "float32" }[]) => [inputs[0]],
  supportsDType: (dtype: string) => dtype === "float32",
  cpu(
    a: {
      attrs: { min: number; max: number };
      inputs: { data: HostArray }[];
      outputs: { data: HostArray }[];
    },
  ) {
    const x = a.inputs[0].data, y = a.outputs[0].data;
    for (let i = 0; i < x.length; i++) y[i] = Math.min(a.attrs.max, Math.max(a.attrs.min, x[i]));
  },
  enqueueCuda(a: {
    layer: string;
    attrs: { min: number; max: number };
    inputs: { ptr: Deno.PointerValue; dims: number[] }[];
    outputs: { ptr: Deno.PointerValue }[];
    stream: Deno.PointerValue;
  }) {
    const lib = loadLibrary();
    const count = a.inputs[0].dims.reduce((p, d) => p * d, 1);
    const params = ACTIVATION_PARAMS.pack({
      x: a.inputs[0].ptr,
      y: a.outputs[0].ptr,
      count,
      act: ACTIVATION_CODE.clip,
      alpha: a.attrs.min,
      beta: a.attrs.max,
    });
    check(lib, lib.symbols.kiln_launch_activation(params, a.stream), `plugin "${a.layer}"`);
  },
};

/** Registers the test plugin (idempotent) and returns its name. */
export function gpuTestClipPlugin(): string {
  registerPlugin(clipPlugin as never);
  return clipPlugin.name;
}

export const MORE_OP_CASES: Record<string, OpCase[]> = {
  MatrixMultiply: [
    matmul("rows = batch [N,40]·[40,33] (GEMV at 1 and 3, tiled at 64)", {
      a: [N, 40],
      b: [40, 33],
    }, 64),
    matmul("[N,5,7]·[7,6], B broadcast", { a: [N, 5, 7], b: [7, 6] }),
    matmul("Aᵀ·Bᵀ batched [N,2,9,4]ᵀ·[N,2,3,9]ᵀ", {
      a: [N, 2, 9, 4],
      b: [N, 2, 3, 9],
      transposeA: true,
      transposeB: true,
    }),
    matmul("GEMV m=1 [N,1,300]·[300,70] + bias + relu", {
      a: [N, 1, 300],
      b: [300, 70],
      bias: 70,
      activation: { type: "relu" },
    }),
    matmul("GEMV m=3, Aᵀ, Bᵀ [N,7,3]ᵀ·[N,5,7]ᵀ", {
      a: [N, 7, 3],
      b: [N, 5, 7],
      transposeA: true,
      transposeB: true,
    }),
    matmul("tiled 70x90x130 + tanh + post residual", {
      a: [N, 70, 130],
      b: [130, 90],
      activation: { type: "tanh" },
      residual: { mode: "post", dims: [N, 70, 90] },
    }),
    matmul("tiled Aᵀ [N,33,65]ᵀ·[33,47] + bias + pre residual + sigmoid", {
      a: [N, 33, 65],
      b: [33, 47],
      transposeA: true,
      bias: 47,
      activation: { type: "sigmoid" },
      residual: { mode: "pre", dims: [N, 65, 47] },
    }),
    matmul(
      "split-K [N,16,3000]·[16,3000]ᵀ",
      { a: [N, 16, 3000], b: [16, 3000], transposeB: true },
      3,
    ),
    matmul("broadcast lead dims [N,1,12,6]·[3,6,20]", { a: [N, 1, 12, 6], b: [3, 6, 20] }),
    matmul("unbatched A [9,10]·[N,10,11]", { a: [9, 10], b: [N, 10, 11] }),
  ],
  Gather: [
    gather("embedding: Constant [50,16] by [N,3]", {
      data: [50, 16],
      indices: [N, 3],
      axis: 0,
      constant: true,
    }),
    gather("axis 1 of [N,7,5] by [4]", { data: [N, 7, 5], indices: [4], axis: 1 }),
    gather("axis -1 of int32 [N,3,9] by [2,2]", {
      data: [N, 3, 9],
      dtype: "int32",
      indices: [2, 2],
      axis: -1,
    }),
    gather("16-byte rows: axis 1 of [N,6,8] by [5]", { data: [N, 6, 8], indices: [5], axis: 1 }),
    gather("odd rows: axis 2 of [N,2,9,3] by [7]", { data: [N, 2, 9, 3], indices: [7], axis: 2 }),
  ],
  TopK: [
    topk("max k=3, last axis [N,4,50]", [N, 4, 50], { op: "max", k: 3, axis: -1 }),
    topk("min k=5, axis 1 [N,40,3] (strided)", [N, 40, 3], { op: "min", k: 5, axis: 1 }),
    topk("argmax k=1 [N,300]", [N, 300], { op: "max", k: 1, axis: 1 }),
    topk("argmin k=1 axis 1 [N,33,2]", [N, 33, 2], { op: "min", k: 1, axis: 1 }),
    topk("max k=20 with ties [N,2,100]", [N, 2, 100], { op: "max", k: 20, axis: 2 }, {
      levels: 5,
    }),
    topk("min k=1 with ties [N,6,10]", [N, 6, 10], { op: "min", k: 1, axis: 2 }, { levels: 3 }),
    topk("int32 max k=4 with ties [N,3,30]", [N, 3, 30], { op: "max", k: 4, axis: 2 }, {
      dtype: "int32",
    }),
    topk("max k=7 over 5000 (streamed through the buffer)", [N, 5000], {
      op: "max",
      k: 7,
      axis: 1,
    }, { maxBatch: 3 }),
    topk("min k=300 over 1000", [N, 1000], { op: "min", k: 300, axis: 1 }, { maxBatch: 3 }),
    topk("k = len = 9", [N, 9], { op: "max", k: 9, axis: 1 }),
  ],
  Deconvolution: [
    deconv("3x3 stride 2 pad 1 + bias", {
      c: 4,
      h: 5,
      w: 5,
      outputs: 6,
      kernel: [3, 3],
      stride: [2, 2],
      padding: [1, 1],
      bias: true,
    }),
    deconv("groups 2 dilation 2", {
      c: 4,
      h: 6,
      w: 6,
      outputs: 4,
      kernel: [3, 3],
      dilation: [2, 2],
      groups: 2,
    }),
    deconv("2x2 stride 2 + relu + post residual", {
      c: 3,
      h: 4,
      w: 7,
      outputs: 5,
      kernel: [2, 2],
      stride: [2, 2],
      activation: { type: "relu" },
      residual: "post",
    }),
    deconv("5x3 stride 3x2 pad 2x1 output padding 1", {
      c: 2,
      h: 3,
      w: 4,
      outputs: 3,
      kernel: [5, 3],
      stride: [3, 2],
      padding: [2, 1],
      outputPadding: [1, 1],
      bias: true,
      activation: { type: "leaky_relu", alpha: 0.1 },
    }),
    deconv("1x1 depthwise-like groups 3", {
      c: 3,
      h: 5,
      w: 5,
      outputs: 6,
      kernel: [1, 1],
      groups: 3,
    }),
  ],
  RaggedSoftMax: [
    ragged("[N,4,9]", [N, 4, 9]),
    ragged("[N,100] long rows", [N, 100]),
    ragged("unbatched [3,40]", [3, 40]),
  ],
  Plugin: [
    {
      name: "clip plugin with enqueueCuda [N,3,17]",
      maxBatch: 5,
      build(net) {
        const x = net.input("x", [N, 3, 17]);
        net.markOutput(x.plugin(gpuTestClipPlugin(), { min: -0.3, max: 0.6 }), "y");
      },
    },
  ],
};
