/**
 * FusedElementwise on the CPU: the program's steps applied one after another over the whole
 * tensor. The running values are kept in the float32 output, so each step rounds to float32
 * exactly as the layers it stands for did when they wrote their own tensors.
 */
import {
  constantSlot,
  type FusedElementwiseAttrs,
  type FusedElementwiseOperand,
} from "../../dsl/layers/fused_elementwise.ts";
import { type CpuKernel, f32, type HostTensor } from "./_kernel.ts";
import { applyActivation } from "./activation.ts";
import { unary } from "./unary.ts";

type BinaryOp = "sum" | "prod" | "max" | "min" | "sub" | "div" | "pow";

/** ElementWise's functions (NaN on the left propagates through max/min, as that kernel). */
const BINARY: Record<BinaryOp, (a: number, b: number) => number> = {
  sum: (a, b) => a + b,
  prod: (a, b) => a * b,
  max: (a, b) => (a >= b || a !== a ? a : b),
  min: (a, b) => (a <= b || a !== a ? a : b),
  sub: (a, b) => a - b,
  div: (a, b) => a / b,
  pow: (a, b) => Math.pow(a, b),
};

/** Operand value of element i. */
function operandReader(
  o: FusedElementwiseOperand,
  j: number,
  inputs: HostTensor[],
  weights: Record<string, ArrayLike<number>>,
): (i: number) => number {
  if (o.kind === "input") {
    const d = inputs[o.input].data as Float32Array;
    return (i) => d[i];
  }
  const c = weights[constantSlot(j)];
  if (o.count === 1) {
    const v = c[0];
    return () => v;
  }
  return (i) => c[Math.floor(i / o.inner) % o.count];
}

export const fusedElementwise: CpuKernel<FusedElementwiseAttrs> = (args) => {
  const { attrs, inputs, outputs, weights } = args;
  const y = f32(outputs[0]);
  y.set(f32(inputs[0]));
  const readers = attrs.operands.map((o, j) => operandReader(o, j, inputs, weights));
  const out: HostTensor = { data: y, dims: outputs[0].dims };
  for (const s of attrs.steps) {
    if (s.op === "unary") {
      unary({ layer: args.layer, attrs: { op: s.fn }, weights: {}, inputs: [out], outputs: [out] });
    } else if (s.op === "activation") {
      applyActivation(s.activation, y);
    } else {
      const f = BINARY[s.fn], read = readers[s.operand];
      if (s.reversed) { for (let i = 0; i < y.length; i++) y[i] = f(read(i), y[i]); }
      else for (let i = 0; i < y.length; i++) y[i] = f(y[i], read(i));
    }
  }
};
