/**
 * Elementwise chains into one layer: consecutive Unary, Activation, ElementWise (with a
 * constant, or with another tensor of the same shape) and Scale layers on one float32 shape,
 * each intermediate tensor read by the next layer only, become one FusedElementwise layer: a
 * small program of steps run in one pass over the data (one kernel on the GPU instead of one
 * per layer, and no intermediate tensors).
 *
 * A Scale becomes up to three steps (·scale, +shift, ^power); a constant operand is kept when
 * its values broadcast as one block of the shape's dims (one value, per channel, per row, per
 * element), read at (i / inner) % count.
 */
import { sameDims } from "../../dsl/ir/dims.ts";
import type { Layer, NetworkGraph, Tensor } from "../../dsl/ir/graph.ts";
import type { Weights } from "../../dsl/ir/weights.ts";
import type { ActivationSpec } from "../../dsl/layers/_epilogue.ts";
import {
  constantSlot,
  FUSED_ELEMENTWISE_MAX_OPERANDS,
  FUSED_ELEMENTWISE_MAX_STEPS,
  type FusedElementwiseOperand,
  type FusedElementwiseStep,
} from "../../dsl/layers/fused_elementwise.ts";
import type { UnaryOp } from "../../dsl/layers/unary.ts";
import type { Pass } from "../pass.ts";
import { replaceChain, soleReader } from "./_chain.ts";

type BinaryFn = "sum" | "prod" | "max" | "min" | "sub" | "div" | "pow";

/** The program being assembled: steps, operands, the fused layer's inputs and weights. */
class Program {
  steps: FusedElementwiseStep[] = [];
  operands: FusedElementwiseOperand[] = [];
  inputs: Tensor[];
  weights = new Map<string, Weights>();
  /** Constant layers whose values became operands (removed when nothing else reads them). */
  constants: Layer[] = [];

  constructor(x: Tensor) {
    this.inputs = [x];
  }

  clone(): Program {
    const p = new Program(this.inputs[0]);
    p.steps = [...this.steps];
    p.operands = [...this.operands];
    p.inputs = [...this.inputs];
    p.weights = new Map(this.weights);
    p.constants = [...this.constants];
    return p;
  }

  fits(): boolean {
    return this.steps.length <= FUSED_ELEMENTWISE_MAX_STEPS &&
      this.operands.length <= FUSED_ELEMENTWISE_MAX_OPERANDS;
  }

  inputOperand(t: Tensor): number {
    let input = this.inputs.indexOf(t);
    if (input < 0) input = this.inputs.push(t) - 1;
    const found = this.operands.findIndex((o) => o.kind === "input" && o.input === input);
    return found >= 0 ? found : this.operands.push({ kind: "input", input }) - 1;
  }

  constantOperand(values: Float32Array, count: number, inner: number): number {
    const j = this.operands.push({ kind: "constant", count, inner }) - 1;
    this.weights.set(constantSlot(j), { dtype: "float32", values });
    return j;
  }

  binary(fn: BinaryFn, operand: number, reversed = false): void {
    this.steps.push({ op: "binary", fn, operand, reversed });
  }
}

/**
 * How constant dims `c` broadcast onto `dims`: (i / inner) % count when the non-1 dims of c
 * form one block of full extents; undefined otherwise.
 */
function blockPattern(
  c: readonly (number | string)[],
  dims: readonly (number | string)[],
): { count: number; inner: number } | undefined {
  const aligned = dims.length - c.length;
  if (aligned < 0) return undefined;
  const big = c.map((d, i) => (d !== 1 ? i + aligned : -1)).filter((i) => i >= 0);
  if (!big.length) return { count: 1, inner: 1 };
  const lo = big[0], hi = big[big.length - 1];
  let count = 1, inner = 1;
  for (let d = lo; d <= hi; d++) {
    if (c[d - aligned] !== dims[d] || typeof dims[d] !== "number") return undefined;
    count *= dims[d] as number;
  }
  for (let d = hi + 1; d < dims.length; d++) {
    if (typeof dims[d] !== "number") return undefined;
    inner *= dims[d] as number;
  }
  return { count, inner };
}

function f32Values(w: Weights | undefined): Float32Array | undefined {
  return w && w.dtype === "float32" ? w.values as Float32Array : undefined;
}

/** Appends `layer`, reading the running tensor `t`, to `p`; false when it cannot be fused. */
function append(p: Program, layer: Layer, t: Tensor): boolean {
  const out = layer.outputs[0];
  if (
    layer.outputs.length !== 1 || out.dtype !== "float32" || t.dtype !== "float32" ||
    !sameDims(out.dims, t.dims) || (layer.precision && layer.precision !== "fp32")
  ) return false;
  switch (layer.kind) {
    case "Unary":
      if (layer.attrs.op === "not") return false;
      p.steps.push({ op: "unary", fn: layer.attrs.op as Exclude<UnaryOp, "not"> });
      return true;
    case "Activation":
      p.steps.push({ op: "activation", activation: { ...(layer.attrs as ActivationSpec) } });
      return true;
    case "ElementWise": {
      if (layer.inputs.length !== 2 || layer.inputs[0] === layer.inputs[1]) return false;
      const reversed = layer.inputs[1] === t;
      const other = reversed ? layer.inputs[0] : layer.inputs[1];
      if (other.dtype !== "float32") return false;
      const fn = layer.attrs.op as BinaryFn;
      const k = other.producer;
      const values = k?.kind === "Constant" ? f32Values(k.weights.get("values")) : undefined;
      const pattern = values && blockPattern(other.dims, t.dims);
      if (values && pattern && values.length === pattern.count) {
        p.binary(fn, p.constantOperand(values, pattern.count, pattern.inner), reversed);
        p.constants.push(k!);
      } else if (sameDims(other.dims, t.dims)) {
        p.binary(fn, p.inputOperand(other), reversed);
      } else return false;
      return true;
    }
    case "Scale": {
      const dims = t.dims;
      let pattern: { count: number; inner: number } | undefined;
      const sc = f32Values(layer.weights.get("scale"));
      const sh = f32Values(layer.weights.get("shift"));
      const pw = f32Values(layer.weights.get("power"));
      const count = (sc ?? sh ?? pw)?.length ?? 1;
      if (layer.attrs.mode === "uniform") pattern = { count: 1, inner: 1 };
      else if (layer.attrs.mode === "elementwise") pattern = { count, inner: 1 };
      else {
        const axis = layer.attrs.channelAxis as number;
        const c = dims.map((d, i) => (i === axis ? d : 1));
        pattern = blockPattern(c, dims);
      }
      if (!pattern) return false;
      if (sc) p.binary("prod", p.constantOperand(sc, pattern.count, pattern.inner));
      if (sh) p.binary("sum", p.constantOperand(sh, pattern.count, pattern.inner));
      if (pw && pw.some((v) => v !== 1)) {
        p.binary("pow", p.constantOperand(pw, pattern.count, pattern.inner));
      }
      return true;
    }
  }
  return false;
}

/** The running tensor of a chain's first layer (an ElementWise may run on either input). */
function chainInput(layer: Layer): Tensor | undefined {
  if (layer.kind !== "ElementWise") return layer.inputs[0];
  const out = layer.outputs[0];
  return layer.inputs.find((t) => sameDims(t.dims, out.dims) && t.producer?.kind !== "Constant") ??
    layer.inputs.find((t) => sameDims(t.dims, out.dims));
}

function findChain(net: NetworkGraph, first: Layer) {
  const x = chainInput(first);
  if (!x) return undefined;
  let p = new Program(x);
  if (!append(p, first, x) || !p.fits()) return undefined;
  const chain = [first];
  let t = first.outputs[0];
  for (let next = soleReader(net, t); next; next = soleReader(net, t)) {
    const q = p.clone();
    if (!append(q, next, t) || !q.fits()) break;
    p = q;
    chain.push(next);
    t = next.outputs[0];
  }
  return chain.length >= 2 && p.steps.length ? { chain, program: p } : undefined;
}

function stepName(s: FusedElementwiseStep, p: Program): string {
  if (s.op === "unary") return s.fn;
  if (s.op === "activation") return s.activation.type;
  const o = p.operands[s.operand];
  return `${s.fn} ${o.kind === "input" ? `"${p.inputs[o.input].name}"` : "constant"}${
    s.reversed ? " (reversed)" : ""
  }`;
}

export const fuseElementwiseChain: Pass = {
  name: "fuseElementwiseChain",
  description: "fuse chains of unary/activation/elementwise/scale layers into one kernel",
  level: 1,
  requires: [],
  run({ network, supports }) {
    if (!supports("FusedElementwise")) return [];
    const changes: string[] = [];
    for (const l of [...network.layers]) {
      if (!network.layers.includes(l)) continue;
      const found = findChain(network, l);
      if (!found) continue;
      const { chain, program: p } = found;
      const names = chain.map((c) => `"${c.name}"`).join(", ");
      const fused = replaceChain(
        network,
        chain,
        "FusedElementwise",
        { steps: p.steps, operands: p.operands },
        p.weights,
        p.inputs,
      );
      for (const c of new Set(p.constants)) {
        const out = c.outputs[0];
        if (network.outputs.includes(out) || network.consumers(out).length) continue;
        network.removeLayer(c);
        network.tensors.delete(out.name);
      }
      changes.push(
        `fused ${chain.length} elementwise layers (${names}) into one layer "${fused.name}": ${
          p.steps.map((s) => stepName(s, p)).join(", ")
        }`,
      );
    }
    return changes;
  },
};
