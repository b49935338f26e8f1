/**
 * Cases of the generic op harness, by layer kind: each builds a small network around one layer
 * (shapes and attribute combinations chosen to reach every kernel path: vectorized and scalar
 * tails, warp/block/column softmax, GEMV and both GEMM tiles, broadcasting, epilogues). An op
 * adds only its cases here; tests/gpu/ops.ts runs each at batch 1, 3 and the maximum.
 */
import { N } from "../../dsl/ir/dims.ts";
import type { Tensor } from "../../dsl/ir/graph.ts";
import { convOutputSize } from "../../dsl/layers/convolution.ts";
import type { Network } from "../../dsl/network.ts";
import { randomArray } from "../_util.ts";
import type { HostArray } from "../../dsl/ir/dtype.ts";
import { MORE_OP_CASES } from "./op_cases_more_kinds.ts";
import { RNN_CASES } from "./rnn_cases.ts";

export interface OpCase {
  name: string;
  maxBatch: number;
  /** Adds inputs, the layer(s) and marks outputs. */
  build(net: Network, r: () => number): void;
  /** Input value range (default [-1, 1]). */
  range?: [number, number];
  /** Values for a binding (indices, bounds: inside their range), or undefined for random ones. */
  input?(binding: string, dtype: string, n: number, r: () => number): HostArray | undefined;
}

const w = (n: number, r: () => number, lo = -1, hi = 1) => randomArray(n, r, lo, hi);

const ACTIVATIONS: { type: string; alpha?: number; beta?: number }[] = [
  { type: "relu" },
  { type: "sigmoid" },
  { type: "tanh" },
  { type: "leaky_relu", alpha: 0.1 },
  { type: "elu", alpha: 0.7 },
  { type: "selu" },
  { type: "softsign" },
  { type: "softplus", alpha: 1.5, beta: 0.8 },
  { type: "clip", alpha: -0.3, beta: 0.4 },
  { type: "hard_sigmoid" },
  { type: "scaled_tanh", alpha: 1.7, beta: 0.6 },
  { type: "thresholded_relu", alpha: 0.2 },
];

interface ConvSpec {
  c: number;
  h: number;
  w: number;
  outputs: number;
  kernel: [number, number];
  stride?: [number, number];
  padding?: [number, number];
  postPadding?: [number, number];
  dilation?: [number, number];
  groups?: number;
  bias?: boolean;
  activation?: { type: string; alpha?: number; beta?: number };
  residual?: "pre" | "post";
}

function conv(name: string, s: ConvSpec, maxBatch = 5): OpCase {
  return {
    name,
    maxBatch,
    build(net, r) {
      const x = net.input("x", [N, s.c, s.h, s.w]);
      const g = s.groups ?? 1;
      const args: Record<string, unknown> = {
        outputs: s.outputs,
        kernel: s.kernel,
        stride: s.stride ?? [1, 1],
        padding: s.padding ?? [0, 0],
        dilation: s.dilation ?? [1, 1],
        groups: g,
        weights: w(s.outputs * (s.c / g) * s.kernel[0] * s.kernel[1], r),
      };
      if (s.postPadding) args.postPadding = s.postPadding;
      if (s.bias) args.bias = w(s.outputs, r);
      if (s.activation) args.activation = s.activation;
      let inputs: Tensor | Tensor[] = x;
      if (s.residual) {
        // The residual has the output's shape.
        const post = s.postPadding ?? s.padding ?? [0, 0];
        const [oh, ow] = [0, 1].map((i) =>
          convOutputSize(
            [s.h, s.w][i],
            s.kernel[i],
            (s.stride ?? [1, 1])[i],
            (s.padding ?? [0, 0])[i],
            post[i],
            (s.dilation ?? [1, 1])[i],
          )
        );
        inputs = [x, net.input("residual", [N, s.outputs, oh, ow])];
        args.residual = s.residual;
      }
      net.markOutput(net.addConvolution(inputs, args as never).output(), "y");
    },
  };
}

function fc(
  name: string,
  dims: number[],
  outputs: number,
  extra: { axis?: number; bias?: boolean; relu?: boolean; residual?: "pre" | "post" } = {},
  maxBatch = 8,
): OpCase {
  return {
    name,
    maxBatch,
    build(net, r) {
      const x = net.input("x", [N, ...dims]);
      const axis = extra.axis ?? 1;
      const k = dims.slice(axis - 1).reduce((a, b) => a * b, 1);
      const args: Record<string, unknown> = { outputs, axis, weights: w(outputs * k, r) };
      if (extra.bias) args.bias = w(outputs, r);
      if (extra.relu) args.activation = { type: "relu" };
      let inputs: Tensor | Tensor[] = x;
      if (extra.residual) {
        inputs = [x, net.input("residual", [N, ...dims.slice(0, axis - 1), outputs])];
        args.residual = extra.residual;
      }
      net.markOutput(net.addFullyConnected(inputs, args as never).output(), "y");
    },
  };
}

function pool(name: string, dims: number[], args: Record<string, unknown>): OpCase {
  return {
    name,
    maxBatch: 6,
    build(net) {
      net.markOutput(net.input("x", [N, ...dims]).pool(args as never), "y");
    },
  };
}

function softmax(name: string, dims: (number | "N")[], axis: number, log = false): OpCase {
  return {
    name,
    maxBatch: 7,
    build(net) {
      net.markOutput(net.input("x", dims).softmax({ axis, log }), "y");
    },
    range: [-4, 4],
  };
}

function elementwise(
  name: string,
  op: string,
  shapes: (number | "N")[][],
  range?: [number, number],
): OpCase {
  return {
    name,
    maxBatch: 5,
    build(net) {
      const ins = shapes.map((d, i) => net.input(`in${i}`, d));
      net.markOutput(net.addElementWise(ins, { op } as never).output(), "y");
    },
    range,
  };
}

function scale(
  name: string,
  dims: number[],
  mode: "uniform" | "channel" | "elementwise",
  slots: ("scale" | "shift" | "power")[],
  channelAxis = 1,
): OpCase {
  return {
    name,
    maxBatch: 4,
    build(net, r) {
      const count = mode === "uniform"
        ? 1
        : mode === "channel"
        ? [0, ...dims][channelAxis]
        : dims.reduce((a, b) => a * b, 1);
      const args: Record<string, unknown> = { mode, channelAxis };
      // Positive bases and small integer powers keep (x·s + t)^p real.
      if (slots.includes("scale")) args.scale = w(count, r, 0.5, 1.5);
      if (slots.includes("shift")) args.shift = w(count, r, 1.5, 2.5);
      if (slots.includes("power")) {
        args.power = Float32Array.from({ length: count }, (_, i) => [1, 2, 3, 0.5][i % 4]);
      }
      net.markOutput(net.input("x", [N, ...dims]).scale(args as never), "y");
    },
  };
}

function identity(name: string, from: string, to: string, range?: [number, number]): OpCase {
  return {
    name,
    maxBatch: 9,
    build(net) {
      net.markOutput(net.input("x", [N, 3, 37], from as never).cast(to as never), "y");
    },
    range,
  };
}

function single(
  name: string,
  dims: (number | "N")[],
  apply: (x: Tensor) => Tensor,
  extra: { dtype?: "float32" | "int32"; range?: [number, number]; maxBatch?: number } = {},
): OpCase {
  return {
    name,
    maxBatch: extra.maxBatch ?? 5,
    build(net) {
      net.markOutput(apply(net.input("x", dims, extra.dtype ?? "float32")), "y");
    },
    range: extra.range,
  };
}

/** Unary ops with an input range inside each one's domain. */
const UNARY_CASES: [string, [number, number]][] = [
  ["exp", [-3, 3]],
  ["log", [0.1, 5]],
  ["sqrt", [0.1, 5]],
  ["recip", [0.5, 3]],
  ["abs", [-2, 2]],
  ["neg", [-2, 2]],
  ["sin", [-3, 3]],
  ["cos", [-3, 3]],
  ["tan", [-1.2, 1.2]],
  ["sinh", [-3, 3]],
  ["cosh", [-3, 3]],
  ["asin", [-0.99, 0.99]],
  ["acos", [-0.99, 0.99]],
  ["atan", [-4, 4]],
  ["asinh", [-4, 4]],
  ["acosh", [1.01, 5]],
  ["atanh", [-0.99, 0.99]],
  ["ceil", [-5, 5]],
  ["floor", [-5, 5]],
  ["round", [-5, 5]],
  ["erf", [-3, 3]],
  ["sign", [-2, 2]],
];

export const OP_CASES: Record<string, OpCase[]> = {
  Activation: [
    ...ACTIVATIONS.map((a): OpCase => ({
      name: `${a.type} [N,3,5,7]`,
      maxBatch: 6,
      build(net) {
        net.markOutput(net.input("x", [N, 3, 5, 7]).activation(a as never), "y");
      },
      range: [-3, 3],
    })),
    {
      name: "relu [N,64] (16-byte vectors)",
      maxBatch: 8,
      build(net) {
        net.markOutput(net.input("x", [N, 64]).relu(), "y");
      },
    },
  ],
  Convolution: [
    conv("LeNet conv1 1->20 5x5", { c: 1, h: 28, w: 28, outputs: 20, kernel: [5, 5], bias: true }),
    conv("3->8 3x3 stride 2 pad 1 bias relu", {
      c: 3,
      h: 17,
      w: 13,
      outputs: 8,
      kernel: [3, 3],
      stride: [2, 2],
      padding: [1, 1],
      bias: true,
      activation: { type: "relu" },
    }),
    conv("4->6 groups 2 dilation 2 asymmetric padding", {
      c: 4,
      h: 11,
      w: 9,
      outputs: 6,
      kernel: [3, 2],
      padding: [2, 1],
      postPadding: [0, 1],
      dilation: [2, 2],
      groups: 2,
    }),
    conv("depthwise 8 groups 3x3 pad 1 leaky_relu", {
      c: 8,
      h: 10,
      w: 10,
      outputs: 8,
      kernel: [3, 3],
      padding: [1, 1],
      groups: 8,
      bias: true,
      activation: { type: "leaky_relu", alpha: 0.2 },
    }),
    conv("1x1 16->24 residual pre + tanh", {
      c: 16,
      h: 7,
      w: 7,
      outputs: 24,
      kernel: [1, 1],
      bias: true,
      activation: { type: "tanh" },
      residual: "pre",
    }),
    conv("3x3 5->7 residual post + relu", {
      c: 5,
      h: 9,
      w: 8,
      outputs: 7,
      kernel: [3, 3],
      padding: [1, 1],
      activation: { type: "relu" },
      residual: "post",
    }),
    conv("LeNet conv2 20->50 5x5 (split-K at small batches)", {
      c: 20,
      h: 12,
      w: 12,
      outputs: 50,
      kernel: [5, 5],
      bias: true,
      activation: { type: "relu" },
    }, 4),
    conv("LeNet conv1 at batch 64 (32x128 tiles)", {
      c: 1,
      h: 28,
      w: 28,
      outputs: 20,
      kernel: [5, 5],
      bias: true,
    }, 64),
    conv("64->16 groups 2 3x3 on 4x4 (split-K per group)", {
      c: 64,
      h: 4,
      w: 4,
      outputs: 16,
      kernel: [3, 3],
      padding: [1, 1],
      groups: 2,
      bias: true,
      residual: "post",
    }, 3),
    conv("16->128 3x3 pad 1 on 32x32 (64x64 tiles)", {
      c: 16,
      h: 32,
      w: 32,
      outputs: 128,
      kernel: [3, 3],
      padding: [1, 1],
      bias: true,
    }, 4),
  ],
  FullyConnected: [
    fc("784->256 bias relu (GEMV, 16-byte loads)", [784], 256, { bias: true, relu: true }),
    fc("[7,3] axis 1 -> 10 (GEMV, scalar loads)", [7, 3], 10, { bias: true }),
    fc("[4,5,6] axis 2 -> 9 (tiled past 8 rows)", [4, 5, 6], 9, { axis: 2, bias: true }),
    fc("[33] -> 17 residual post", [33], 17, { residual: "post", relu: true }, 20),
    fc("[64] -> 40 residual pre, tiled", [64], 40, { residual: "pre", bias: true }, 64),
    fc("[300] -> 2500 (64x64 tiles)", [300], 2500, { bias: true }, 256),
    fc("[500] -> 10 at batch 256 (split-K)", [500], 10, { bias: true, relu: true }, 256),
    fc("MLP fc1 [784] -> 256 at batch 1024", [784], 256, { bias: true, relu: true }, 1024),
  ],
  Pooling: [
    pool("max 2x2", [3, 12, 12], { type: "max", window: 2 }),
    pool("average 3x3 stride 2 pad 1 exclude padding", [2, 9, 11], {
      type: "average",
      window: 3,
      stride: 2,
      padding: 1,
    }),
    pool("average 3x3 stride 2 pad 1 include padding, ceil", [2, 10, 7], {
      type: "average",
      window: 3,
      stride: 2,
      padding: 1,
      excludePadding: false,
      rounding: "ceil",
    }),
    pool("max 3x2 stride [2,1] asymmetric padding", [4, 8, 9], {
      type: "max",
      window: [3, 2],
      stride: [2, 1],
      padding: [1, 0],
      postPadding: [0, 1],
    }),
    pool("global average", [5, 6, 7], { type: "average", global: true }),
  ],
  SoftMax: [
    softmax("[N,10] axis 1 (warp per row)", [N, 10], 1),
    softmax("[N,4,5,6] axis 1 (columns)", [N, 4, 5, 6], 1),
    softmax("[N,3,2000] axis -1 (block per row)", [N, 3, 2000], -1),
    softmax("[N,3,130] axis 2 log", [N, 3, 130], 2, true),
    softmax("unbatched [6,9] axis 0 (columns)", [6, 9], 0),
  ],
  ElementWise: [
    ...["sum", "prod", "max", "min", "sub", "div"].map((op) =>
      elementwise(`${op} [N,3,4,5] with [3,1,5]`, op, [[N, 3, 4, 5], [3, 1, 5]])
    ),
    elementwise("pow [N,6] with [6] (positive base)", "pow", [[N, 6], [6]], [0.5, 2]),
    elementwise("sum same shape [N,32] (16-byte vectors)", "sum", [[N, 32], [N, 32]]),
    elementwise("prod [N,1,7] with [N,5,1]", "prod", [[N, 1, 7], [N, 5, 1]]),
    elementwise("max of 3 inputs [N,4] [1] [N,4]", "max", [[N, 4], [1], [N, 4]]),
    elementwise("sub 4 inputs", "sub", [[N, 2, 3], [3], [N, 2, 1], [2, 3]]),
  ],
  Scale: [
    scale("uniform scale+shift", [3, 4, 5], "uniform", ["scale", "shift"]),
    scale("channel scale+shift+power", [6, 4, 5], "channel", ["scale", "shift", "power"]),
    scale("channel axis 2 shift", [3, 7, 2], "channel", ["shift"], 2),
    scale("elementwise scale+power", [2, 3, 4], "elementwise", ["scale", "shift", "power"]),
  ],
  Identity: [
    identity("float32 copy", "float32", "float32"),
    identity("float32 -> int32", "float32", "int32", [-50, 50]),
    identity("float32 -> int8 (saturating)", "float32", "int8", [-300, 300]),
    identity("int32 -> float32", "int32", "float32", [-1000, 1000]),
    identity("int32 -> int8 (saturating)", "int32", "int8", [-300, 300]),
    identity("float32 -> float16", "float32", "float16", [-70000, 70000]),
    identity("float16 -> float32", "float16", "float32", [-100, 100]),
  ],
  Unary: [
    ...UNARY_CASES.map(([op, range]) =>
      single(`${op} [N,3,41]`, [N, 3, 41], (x) => x.unary(op as never), { range })
    ),
    ...["abs", "neg", "sign", "not"].map((op) =>
      single(`${op} int32 [N,50]`, [N, 50], (x) => x.unary(op as never), {
        dtype: "int32",
        range: [-3, 3],
      })
    ),
  ],
  Reduce: [
    single("sum over (2,3) [N,4,5,6]", [N, 4, 5, 6], (x) => x.reduce({ op: "sum", axes: [2, 3] })),
    single(
      "avg over 1 keepDims",
      [N, 7, 3],
      (x) => x.reduce({ op: "avg", axes: [1], keepDims: true }),
    ),
    single("max over (1,3)", [N, 3, 4, 5], (x) => x.reduce({ op: "max", axes: [1, 3] })),
    single("min over -1, 300 long", [N, 2, 300], (x) => x.reduce({ op: "min", axes: [-1] })),
    single("prod over 2", [N, 3, 6], (x) => x.reduce({ op: "prod", axes: [2] }), {
      range: [0.5, 1.5],
    }),
    single("sum int32 over (1,2)", [N, 4, 9], (x) => x.reduce({ op: "sum", axes: [1, 2] }), {
      dtype: "int32",
      range: [-50, 50],
    }),
    single("max int32 over 1", [N, 6, 2], (x) => x.reduce({ op: "max", axes: [1] }), {
      dtype: "int32",
      range: [-50, 50],
    }),
    single(
      "sum of every axis of an unbatched tensor",
      [3, 4],
      (x) => x.reduce({ op: "sum", axes: [0, 1] }),
    ),
  ],
  LRN: [
    single("window 5 [N,7,4,5]", [N, 7, 4, 5], (x) => x.lrn()),
    single(
      "window 3 alpha 0.5 beta 0.6 k 2",
      [N, 4, 3, 3],
      (x) => x.lrn({ window: 3, alpha: 0.5, beta: 0.6, k: 2 }),
    ),
  ],
  Shuffle: [
    single("reshape only", [N, 4, 6], (x) => x.reshape([0, 3, 8])),
    single("transpose [0,2,3,1]", [N, 3, 4, 5], (x) => x.transpose([0, 2, 3, 1])),
    single(
      "reshape then transpose",
      [N, 4, 6],
      (x) => x.shuffle({ reshape: [0, 2, 12], secondTranspose: [0, 2, 1] }),
    ),
    single("transpose, reshape, transpose", [N, 2, 3, 4], (x) =>
      x.shuffle({
        firstTranspose: [0, 3, 1, 2],
        reshape: [0, 4, 6],
        secondTranspose: [0, 2, 1],
      })),
    single("transpose int32", [N, 3, 5], (x) => x.transpose([0, 2, 1]), {
      dtype: "int32",
      range: [-9, 9],
    }),
  ],
  Padding: [
    single(
      "constant 1.5 pre [1,2] post [2,0]",
      [N, 3, 4, 5],
      (x) => x.pad({ pre: [1, 2], post: [2, 0], value: 1.5 }),
    ),
    single(
      "reflect [2,2] [1,3]",
      [N, 2, 5, 6],
      (x) => x.pad({ pre: [2, 2], post: [1, 3], mode: "reflect" }),
    ),
    single(
      "edge with a crop",
      [N, 3, 6, 7],
      (x) => x.pad({ pre: [-1, 2], post: [3, -2], mode: "edge" }),
    ),
    single("int32 constant -7", [N, 4, 4], (x) => x.pad({ pre: [1], post: [2], value: -7 }), {
      dtype: "int32",
      range: [-9, 9],
    }),
  ],
  Concatenation: [
    {
      name: "axis 1 of three inputs",
      maxBatch: 5,
      build(net) {
        const a = net.input("a", [N, 2, 3, 4]), b = net.input("b", [N, 5, 3, 4]);
        const c = net.input("c", [N, 1, 3, 4]);
        net.markOutput(a.concat([b, c], { axis: 1 }), "y");
      },
    },
    {
      name: "last axis, int32",
      maxBatch: 4,
      build(net) {
        const a = net.input("a", [N, 3, 2], "int32"), b = net.input("b", [N, 3, 7], "int32");
        net.markOutput(a.concat([b], { axis: -1 }), "y");
      },
      range: [-9, 9],
    },
  ],
  Constant: [
    {
      name: "constant added to an input",
      maxBatch: 4,
      build(net, r) {
        const k = net.addConstant([], { dims: [3, 4], values: w(12, r) } as never).output();
        net.markOutput(net.input("x", [N, 3, 4]).add(k), "y");
      },
    },
  ],
  ...MORE_OP_CASES,
  RNNv2: RNN_CASES,
};
