/**
 * Unary (TensorRT IUnaryLayer): one elementwise function of one input, same shape and dtype.
 *
 * float32 takes every op but `not`; values are computed in double precision and rounded once.
 * int32 takes `abs`, `neg`, `sign` (wrapping like 32-bit integers: abs(-2^31) = -2^31) and
 * `not`, which reads int32 as booleans (0 is false): not(0) = 1, not(anything else) = 0.
 * `round` rounds halves to even (as CUDA's rintf); `erf` is accurate to 1e-7 absolute.
 */
import { z } from "zod";
import type { DType } from "../ir/dtype.ts";
import { defineLayer, shapeError, type TensorHandle } from "./_define.ts";

export const UNARY_OPS = [
  "exp",
  "log",
  "sqrt",
  "recip",
  "abs",
  "neg",
  "sin",
  "cos",
  "tan",
  "sinh",
  "cosh",
  "asin",
  "acos",
  "atan",
  "asinh",
  "acosh",
  "atanh",
  "ceil",
  "floor",
  "round",
  "erf",
  "sign",
  "not",
] as const;
export type UnaryOp = typeof UNARY_OPS[number];

/** The ops defined on int32 inputs. */
export const INT32_UNARY_OPS: readonly UnaryOp[] = ["abs", "neg", "sign", "not"];

const attrs = z.object({ op: z.enum(UNARY_OPS) });

export type UnaryAttrs = z.output<typeof attrs>;

/** Whether `op` is defined on `dtype`. */
export function unarySupports(op: UnaryOp, dtype: DType): boolean {
  if (dtype === "int32") return INT32_UNARY_OPS.includes(op);
  return dtype === "float32" && op !== "not";
}

const shortcut = (op: UnaryOp) => (t: TensorHandle) => ({ inputs: [t], attrs: { op } });

export const Unary = defineLayer({
  kind: "Unary",
  summary: "elementwise exp, log, sqrt, recip, abs, neg, trigonometric, rounding, erf, sign, not",
  attrs,
  inputs: { min: 1, max: 1 },
  inputDTypes: [["float32", "int32"]],
  inferShape: ({ inputs, attrs }) => {
    const { dims, dtype } = inputs[0];
    if (!unarySupports(attrs.op, dtype)) {
      shapeError(
        dtype === "int32"
          ? `${attrs.op} is not defined on int32 (int32 takes ${INT32_UNARY_OPS.join(", ")})`
          : `${attrs.op} needs an int32 input (booleans as 0/1), got ${dtype}`,
      );
    }
    return [{ dims, dtype }];
  },
  fluent: {
    unary: (t: TensorHandle, op: UnaryOp) => ({ inputs: [t], attrs: { op } }),
    exp: shortcut("exp"),
    log: shortcut("log"),
    sqrt: shortcut("sqrt"),
    abs: shortcut("abs"),
    neg: shortcut("neg"),
    recip: shortcut("recip"),
  },
});
