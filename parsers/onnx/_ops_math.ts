/**
 * Elementwise ONNX ops: binary and variadic arithmetic with numpy broadcasting (Add, Sub, Mul,
 * Div, Pow, Max, Min, Sum, Mean), activations (Relu ... Softsign, Clip, PRelu) and unary math.
 * Each folds on the host when its inputs are constants.
 */
import type { Tensor } from "../../dsl/ir/graph.ts";
import type { ActivationType } from "../../dsl/layers/_epilogue.ts";
import { type UnaryOp, unarySupports } from "../../dsl/layers/unary.ts";
import { ConstTensor, mapConst, reshapeConst } from "./_const.ts";
import {
  type ImportContext,
  type Importer,
  type OnnxValue,
  registerOp,
  reshape,
} from "./_registry.ts";

/** Input `i` as a float32 tensor, or UNSUPPORTED naming the dtype. */
export function floatTensor(ctx: ImportContext, i: number): Tensor {
  const t = ctx.tensor(i);
  if (t.dtype !== "float32") {
    ctx.fail(
      `input ${i} ("${
        ctx.node.inputs[i]
      }") is ${t.dtype}; Kiln computes ${ctx.node.opType} on float32 only`,
    );
  }
  return t;
}

/**
 * Opsets before 7 broadcast B onto A only with `broadcast=1`, aligned at `axis` (B's dims
 * then occupy A's dims axis.. axis+rank(B)-1): B gets trailing 1s so numpy rules say the same.
 */
function legacyBroadcast(ctx: ImportContext, a: OnnxValue, b: OnnxValue): OnnxValue {
  if (ctx.opset >= 7 || ctx.attr.int("broadcast", 0) !== 1 || !ctx.attr.has("axis")) return b;
  const rankA = a.dims.length, rankB = b.dims.length;
  let axis = ctx.attr.int("axis", 0);
  if (axis < 0) axis += rankA;
  const trailing = rankA - axis - rankB;
  if (axis < 0 || trailing < 0) {
    ctx.fail(
      `legacy broadcast axis ${ctx.attr.int("axis")} does not fit ranks ${rankA} and ${rankB}`,
      "INVALID_ATTRIBUTE",
    );
  }
  const dims = [...b.dims, ...new Array(trailing).fill(1)];
  if (b instanceof ConstTensor) return reshapeConst(b, dims as number[]);
  return reshape(ctx, b, dims, "broadcast");
}

type ElementwiseOp = "sum" | "prod" | "max" | "min" | "sub" | "div" | "pow";

const HOST: Record<ElementwiseOp, (...v: number[]) => number> = {
  sum: (...v) => v.reduce((a, b) => a + b, 0),
  prod: (...v) => v.reduce((a, b) => a * b, 1),
  max: (...v) => v.reduce((a, b) => (a >= b || Number.isNaN(a) ? a : b)),
  min: (...v) => v.reduce((a, b) => (a <= b || Number.isNaN(a) ? a : b)),
  sub: (a, b) => a - b,
  div: (a, b) => a / b,
  pow: (a, b) => Math.pow(a, b),
};

/** A binary op (with the legacy broadcast of opsets < 7). */
function binary(op: ElementwiseOp): Importer {
  const operands = (ctx: ImportContext): [OnnxValue, OnnxValue] => {
    const a = ctx.value(0);
    return [a, legacyBroadcast(ctx, a, ctx.value(1))];
  };
  return {
    fold: (ctx) => [mapConst(ctx.node.opType, operands(ctx) as ConstTensor[], HOST[op])],
    import: (ctx) => {
      const [a, b] = operands(ctx);
      const ta = a instanceof ConstTensor ? ctx.materialize(a, ctx.node.inputs[0]) : a;
      const tb = b instanceof ConstTensor ? ctx.materialize(b, ctx.node.inputs[1]) : b;
      for (const [i, t] of [ta, tb].entries()) {
        if (t.dtype !== "float32") {
          ctx.fail(`input ${i} is ${t.dtype}; Kiln's ElementWise computes on float32 only`);
        }
      }
      return ctx.add("ElementWise", [ta, tb], { op }).output(0);
    },
  };
}

registerOp("Add", binary("sum"));
registerOp("Sub", binary("sub"));
registerOp("Mul", binary("prod"));
registerOp("Div", binary("div"));
registerOp("Pow", binary("pow"));

/** Sum, Max, Min over any number of inputs; Mean = Sum / count. */
function variadic(op: ElementwiseOp, mean = false): Importer {
  const inputs = (ctx: ImportContext) => ctx.node.inputs.map((_, i) => i).filter((i) => ctx.has(i));
  return {
    fold: (ctx) => {
      const cs = inputs(ctx).map((i) => ctx.constant(i)!);
      const n = cs.length;
      return [
        mapConst(ctx.node.opType, cs, mean ? (...v) => HOST.sum(...v) / n : HOST[op]),
      ];
    },
    import: (ctx) => {
      const ts = inputs(ctx).map((i) => floatTensor(ctx, i));
      if (ts.length === 0) ctx.fail("needs at least one input", "INVALID_NETWORK");
      if (ts.length === 1) return ts[0];
      const y = ctx.add("ElementWise", ts, { op }, mean ? "sum" : undefined).output(0);
      return mean
        ? ctx.add("Scale", [y], { mode: "uniform", scale: [1 / ts.length] }).output(0)
        : y;
    },
  };
}

registerOp("Sum", variadic("sum"));
registerOp("Max", variadic("max"));
registerOp("Min", variadic("min"));
registerOp("Mean", variadic("sum", true));

// ---------------------------------------------------------------------------------------------
// Activations (TensorRT's IActivationLayer types and parameters)

function activation(
  type: ActivationType,
  params: (ctx: ImportContext) => { alpha?: number; beta?: number } = () => ({}),
): Importer {
  return {
    import: (ctx) => {
      const x = floatTensor(ctx, 0);
      return ctx.add("Activation", [x], { type, ...params(ctx) }).output(0);
    },
  };
}

registerOp("Relu", activation("relu"));
registerOp("Sigmoid", activation("sigmoid"));
registerOp("Tanh", activation("tanh"));
registerOp("Softsign", activation("softsign"));
registerOp("Softplus", activation("softplus", () => ({ alpha: 1, beta: 1 })));
registerOp("LeakyRelu", activation("leaky_relu", (c) => ({ alpha: c.attr.float("alpha", 0.01) })));
registerOp("Elu", activation("elu", (c) => ({ alpha: c.attr.float("alpha", 1) })));
registerOp(
  "Selu",
  activation("selu", (c) => ({
    alpha: c.attr.float("alpha", 1.67326319217681884765625),
    beta: c.attr.float("gamma", 1.05070102214813232421875),
  })),
);
registerOp(
  "HardSigmoid",
  activation("hard_sigmoid", (c) => ({
    alpha: c.attr.float("alpha", 0.2),
    beta: c.attr.float("beta", 0.5),
  })),
);
registerOp(
  "ThresholdedRelu",
  activation("thresholded_relu", (c) => ({ alpha: c.attr.float("alpha", 1) })),
);

/** float32's largest finite value: Clip's default bounds before opset 11. */
const FLT_MAX = 3.4028234663852886e38;

registerOp("Clip", {
  fold: (ctx) => {
    const { min, max } = clipBounds(ctx);
    const lo = typeof min === "number" ? min : -Infinity;
    const hi = typeof max === "number" ? max : Infinity;
    return [mapConst("Clip", [ctx.constInput(0, "input 0")], (x) => Math.min(hi, Math.max(lo, x)))];
  },
  import: (ctx) => {
    const x = floatTensor(ctx, 0);
    const { min, max } = clipBounds(ctx);
    if (typeof min === "number" && typeof max === "number") {
      // numpy's clip, min(max(x, lo), hi): lo > hi gives hi everywhere, as ONNX says.
      return ctx.add("Activation", [x], { type: "clip", alpha: min, beta: max }).output(0);
    }
    // A bound left out or computed at run time: max(x, lo), then min(., hi), broadcasting.
    const bound = (b: number | "runtime", i: number) =>
      b === "runtime" ? floatTensor(ctx, i) : ctx.materialize(ConstTensor.of(1, [], [b]));
    let y = x;
    if (min !== undefined) {
      y = ctx.add("ElementWise", [y, bound(min, 1)], { op: "max" }, "min").output(0);
    }
    if (max !== undefined) {
      y = ctx.add("ElementWise", [y, bound(max, 2)], { op: "min" }, "max").output(0);
    }
    return y;
  },
});

type ClipBound = number | "runtime" | undefined;

/**
 * Clip's bounds: attributes before opset 11 (default ±FLT_MAX), optional inputs after: a
 * number when constant, "runtime" when computed at run time, undefined when left out.
 */
function clipBounds(ctx: ImportContext): { min: ClipBound; max: ClipBound } {
  if (ctx.opset < 11) {
    return { min: ctx.attr.float("min", -FLT_MAX), max: ctx.attr.float("max", FLT_MAX) };
  }
  const bound = (i: number): ClipBound => {
    if (!ctx.has(i)) return undefined;
    const c = ctx.constant(i);
    if (!c) return "runtime";
    if (c.size !== 1) {
      ctx.fail(`input ${i} must be a scalar, got [${c.dims.join(", ")}]`, "INVALID_ARGUMENT");
    }
    return c.values[0];
  };
  return { min: bound(1), max: bound(2) };
}

registerOp("PRelu", {
  fold: (ctx) => [
    mapConst(
      "PRelu",
      [ctx.constInput(0, "input 0"), preluSlope(ctx) as ConstTensor],
      (x, s) => (x < 0 ? s * x : x),
    ),
  ],
  import: (ctx) => {
    const x = floatTensor(ctx, 0);
    const s = preluSlope(ctx);
    const slope = s instanceof ConstTensor ? ctx.materialize(s, ctx.node.inputs[1]) : s;
    // relu(x) + slope·(x − relu(x)): exact, with the slope broadcast like ONNX's.
    const pos = ctx.add("Activation", [x], { type: "relu" }, "relu").output(0);
    const neg = ctx.add("ElementWise", [x, pos], { op: "sub" }, "negative").output(0);
    const scaled = ctx.add("ElementWise", [neg, slope], { op: "prod" }, "slope").output(0);
    return ctx.add("ElementWise", [pos, scaled], { op: "sum" }).output(0);
  },
});

/** Before opset 7 a 1-D slope of C values applies per channel (dim 1), not to the last dim. */
function preluSlope(ctx: ImportContext): OnnxValue {
  const s = ctx.value(1);
  const x = ctx.dims(0);
  if (
    ctx.opset < 7 && s.dims.length === 1 && x.length > 2 && s.dims[0] === x[1] && s.dims[0] !== 1
  ) {
    const dims = [s.dims[0] as number, ...new Array(x.length - 2).fill(1)];
    return s instanceof ConstTensor ? reshapeConst(s, dims) : reshape(ctx, s, dims, "slope");
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Unary math

function unary(op: UnaryOp, host?: (x: number) => number): Importer {
  return {
    fold: host
      ? (ctx) => [mapConst(ctx.node.opType, [ctx.constInput(0, "input 0")], host)]
      : undefined,
    import: (ctx) => {
      const x = ctx.tensor(0);
      if (!unarySupports(op, x.dtype)) {
        ctx.fail(`Kiln's Unary ${op} does not take ${x.dtype} inputs`);
      }
      return ctx.add("Unary", [x], { op }).output(0);
    },
  };
}

registerOp("Abs", unary("abs", Math.abs));
registerOp("Neg", unary("neg", (x) => -x));
registerOp("Exp", unary("exp", Math.exp));
registerOp("Log", unary("log", Math.log));
registerOp("Sqrt", unary("sqrt", Math.sqrt));
registerOp("Reciprocal", unary("recip", (x) => 1 / x));
registerOp("Floor", unary("floor", Math.floor));
registerOp("Ceil", unary("ceil", Math.ceil));
registerOp("Sign", unary("sign", Math.sign));
registerOp("Sin", unary("sin", Math.sin));
registerOp("Cos", unary("cos", Math.cos));
registerOp("Tan", unary("tan", Math.tan));
registerOp("Asin", unary("asin", Math.asin));
registerOp("Acos", unary("acos", Math.acos));
registerOp("Atan", unary("atan", Math.atan));
registerOp("Sinh", unary("sinh", Math.sinh));
registerOp("Cosh", unary("cosh", Math.cosh));
registerOp("Asinh", unary("asinh", Math.asinh));
registerOp("Acosh", unary("acosh", Math.acosh));
registerOp("Atanh", unary("atanh", Math.atanh));
registerOp("Erf", unary("erf"));
