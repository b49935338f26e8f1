/**
 * Reduce over a set of axes. Neighbouring axes that are both reduced (or both kept) are merged
 * first, so [N, C, H, W] over (2, 3) walks as [N·C, H·W]: one pass over the input in memory
 * order, accumulating into a double-precision buffer of the output's size. The innermost run is
 * a tight loop, into a register when it is reduced.
 */
import type { ReduceAttrs, ReduceOp } from "../../dsl/layers/reduce.ts";
import { normalizeAxis } from "../../dsl/ir/dims.ts";
import type { CpuKernel } from "./_kernel.ts";

type Combine = (acc: number, x: number) => number;

/** The first value of the accumulator and how one input element joins it. */
function reducer(op: ReduceOp, integer: boolean): { init: number; combine: Combine } {
  switch (op) {
    case "sum":
    case "avg":
      return { init: 0, combine: integer ? (a, x) => (a + x) | 0 : (a, x) => a + x };
    case "prod":
      return { init: 1, combine: integer ? Math.imul : (a, x) => a * x };
    // `x !== x` lets a NaN in; once the accumulator is NaN no comparison replaces it.
    case "max":
      return { init: -Infinity, combine: (a, x) => (x > a || x !== x ? x : a) };
    case "min":
      return { init: Infinity, combine: (a, x) => (x < a || x !== x ? x : a) };
  }
}

/** Merges runs of neighbouring axes with the same reduced/kept status. */
function collapse(dims: readonly number[], reduced: ReadonlySet<number>) {
  const sizes: number[] = [], isReduced: boolean[] = [];
  dims.forEach((d, i) => {
    const r = reduced.has(i);
    if (sizes.length && isReduced[isReduced.length - 1] === r) sizes[sizes.length - 1] *= d;
    else {
      sizes.push(d);
      isReduced.push(r);
    }
  });
  if (sizes.length === 0) {
    sizes.push(1);
    isReduced.push(true);
  }
  return { sizes, isReduced };
}

export const reduce: CpuKernel<ReduceAttrs> = ({ attrs, inputs, outputs }) => {
  const x = inputs[0].data, dims = inputs[0].dims;
  const y = outputs[0].data;
  const integer = x instanceof Int32Array;
  const { init, combine } = reducer(attrs.op, integer);
  const reduced = new Set(attrs.axes.map((a) => normalizeAxis(a, dims.length)));
  const { sizes, isReduced } = collapse(dims, reduced);
  const rank = sizes.length;

  // Output strides per merged axis: 0 along reduced axes.
  const outStride = new Array<number>(rank).fill(0);
  for (let d = rank - 1, acc = 1; d >= 0; d--) {
    if (!isReduced[d]) {
      outStride[d] = acc;
      acc *= sizes[d];
    }
  }
  const acc = new Float64Array(y.length).fill(init);
  const len = sizes[rank - 1], innerReduced = isReduced[rank - 1];
  const rows = x.length / len;
  const counter = new Array<number>(rank).fill(0);
  let outPos = 0;
  for (let row = 0, inPos = 0; row < rows; row++, inPos += len) {
    if (innerReduced) {
      let a = acc[outPos];
      for (let j = 0; j < len; j++) a = combine(a, x[inPos + j]);
      acc[outPos] = a;
    } else {
      for (let j = 0; j < len; j++) acc[outPos + j] = combine(acc[outPos + j], x[inPos + j]);
    }
    // Step the multi-index of the outer merged axes, moving the output offset with it.
    for (let d = rank - 2; d >= 0; d--) {
      outPos += outStride[d];
      if (++counter[d] < sizes[d]) break;
      outPos -= outStride[d] * sizes[d];
      counter[d] = 0;
    }
  }
  if (attrs.op === "avg") {
    const count = x.length / y.length;
    for (let i = 0; i < y.length; i++) y[i] = acc[i] / count;
  } else {
    y.set(acc);
  }
};
