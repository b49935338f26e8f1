/**
 * MLP chains into one layer (sampleMLP's patterns): `{MatrixMultiply [→ ElementWise sum with a
 * constant] [→ Activation]}+`, `{FullyConnected [→ Activation]}+` and `{FullyConnected [→
 * Scale] [→ Activation]}+`, two or more GEMM stages long, each intermediate tensor read by the
 * next layer only, become one FusedMlp layer that the GPU runs as one kernel for small batches.
 *
 * Runs after fuseEpilogue (most stages then arrive as FC-with-epilogue layers) but does not
 * need it: bias adds, per-feature scales and activations that follow a stage are folded here.
 * A MatrixMultiply is a stage when its right operand is a constant matrix (the weights).
 */
import { sameDims } from "../../dsl/ir/dims.ts";
import type { Layer, NetworkGraph, Tensor } from "../../dsl/ir/graph.ts";
import type { Weights } from "../../dsl/ir/weights.ts";
import type { ActivationSpec } from "../../dsl/layers/_epilogue.ts";
import {
  FUSED_MLP_MAX_STAGES,
  type FusedMlpStage,
  stageSlots,
} from "../../dsl/layers/fused_mlp.ts";
import type { Pass } from "../pass.ts";
import { replaceChain, soleReader } from "./_chain.ts";

interface Stage {
  /** [outputs × inputs], row-major. */
  weights: Float32Array;
  bias?: Float32Array;
  activation?: ActivationSpec;
  inputs: number;
  outputs: number;
  /** Whether weights/bias are this pass's own copies (safe to modify). */
  owned: boolean;
}

function f32Weights(w: Weights | undefined): Float32Array | undefined {
  return w && w.dtype === "float32" ? w.values as Float32Array : undefined;
}

/** The constant values behind `t`, when a float32 Constant layer produces it. */
function constantValues(t: Tensor): Float32Array | undefined {
  const p = t.producer;
  return p?.kind === "Constant" ? f32Weights(p.weights.get("values")) : undefined;
}

function concrete(dims: readonly (number | string)[]): number[] | undefined {
  return dims.every((d) => typeof d === "number") ? dims as number[] : undefined;
}

/**
 * `layer` as a GEMM stage reading `x` over its last `features` (axis: where the flattened
 * features start; later stages must read exactly the previous stage's features).
 */
function gemmStage(layer: Layer, x: Tensor): { stage: Stage; axis: number } | undefined {
  if (!x || layer.inputs[0] !== x || x.dtype !== "float32" || layer.attrs.residual) {
    return undefined;
  }
  if (layer.precision && layer.precision !== "fp32") return undefined;
  const out = layer.outputs[0];
  const bias = layer.weights.get("bias");
  if (bias && bias.dtype !== "float32") return undefined;
  const common = {
    bias: f32Weights(bias),
    activation: layer.attrs.activation as ActivationSpec | undefined,
    owned: false,
  };
  if (layer.kind === "FullyConnected" && layer.inputs.length === 1) {
    const axis = layer.attrs.axis as number;
    const feat = concrete(x.dims.slice(axis));
    const w = f32Weights(layer.weights.get("weights"));
    if (!feat || !w) return undefined;
    const k = feat.reduce((a, b) => a * b, 1), n = layer.attrs.outputs as number;
    return { stage: { ...common, weights: w, inputs: k, outputs: n }, axis };
  }
  if (layer.kind === "MatrixMultiply" && layer.inputs.length === 2 && !layer.attrs.transposeA) {
    const b = layer.inputs[1], values = constantValues(b);
    const rank = x.dims.length;
    if (!values || rank < 2 || b.dims.length < 2 || b.dims.length > rank) return undefined;
    if (b.dims.slice(0, -2).some((d) => d !== 1)) return undefined;
    const transB = !!layer.attrs.transposeB;
    const [r, c] = b.dims.slice(-2) as number[];
    const k = transB ? c : r, n = transB ? r : c;
    if (x.dims[rank - 1] !== k || !sameDims(out.dims, [...x.dims.slice(0, -1), n])) {
      return undefined;
    }
    // The stage wants W as [n × k]: B is [k × n] unless transposed.
    let w = values;
    if (!transB) {
      w = new Float32Array(n * k);
      for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) w[j * k + i] = values[i * n + j];
    }
    return {
      stage: { ...common, weights: w, inputs: k, outputs: n, owned: !transB },
      axis: rank - 1,
    };
  }
  return undefined;
}

/** Makes the stage's arrays its own before they are changed. */
function own(s: Stage): void {
  if (s.owned) return;
  s.weights = s.weights.slice();
  s.bias = s.bias?.slice();
  s.owned = true;
}

/** Per-feature coefficients of `c` broadcast onto `dims` (features last), or undefined. */
function perFeature(c: Tensor, dims: readonly (number | string)[], n: number): boolean {
  const aligned = dims.length - c.dims.length;
  if (aligned < 0) return false;
  return c.dims.every((d, i) => d === 1 || (i + aligned === dims.length - 1 && d === n));
}

/** Folds `next` into the stage's epilogue when it is a bias add, scale or activation. */
function foldEpilogue(s: Stage, next: Layer, t: Tensor): Layer | undefined {
  if (s.activation || next.outputs.length !== 1 || !sameDims(next.outputs[0].dims, t.dims)) {
    return undefined;
  }
  const n = s.outputs;
  if (next.kind === "Activation") {
    s.activation = { ...(next.attrs as ActivationSpec) };
    return next;
  }
  if (next.kind === "ElementWise" && next.attrs.op === "sum" && next.inputs.length === 2) {
    const other = next.inputs[0] === t ? next.inputs[1] : next.inputs[0];
    const c = constantValues(other);
    if (!c || other === t || !perFeature(other, t.dims, n)) return undefined;
    own(s);
    const bias = s.bias ?? new Float32Array(n);
    for (let o = 0; o < n; o++) bias[o] += c.length === 1 ? c[0] : c[o];
    s.bias = bias;
    return next;
  }
  if (next.kind === "Scale") {
    const power = f32Weights(next.weights.get("power"));
    if (power && power.some((p) => p !== 1)) return undefined;
    const mode = next.attrs.mode, rank = t.dims.length;
    const item = t.dims.slice(t.dims[0] === "N" ? 1 : 0);
    const perItemIsFeatures = item.length === 1 || item.slice(0, -1).every((d) => d === 1);
    if (
      !(mode === "uniform" || (mode === "channel" && next.attrs.channelAxis === rank - 1) ||
        (mode === "elementwise" && perItemIsFeatures))
    ) return undefined;
    const sc = f32Weights(next.weights.get("scale")), sh = f32Weights(next.weights.get("shift"));
    own(s);
    const bias = s.bias ?? new Float32Array(n);
    const k = s.inputs;
    for (let o = 0; o < n; o++) {
      const a = sc ? (sc.length === 1 ? sc[0] : sc[o]) : 1;
      const b = sh ? (sh.length === 1 ? sh[0] : sh[o]) : 0;
      for (let i = 0; i < k; i++) s.weights[o * k + i] *= a;
      bias[o] = bias[o] * a + b;
    }
    s.bias = bias;
    return next;
  }
  return undefined;
}

/** The longest chain starting at `first`, with its stages, or undefined when under 2 stages. */
function findChain(net: NetworkGraph, first: Layer) {
  const start = gemmStage(first, first.inputs[0]);
  if (!start) return undefined;
  const stages = [start.stage];
  const chain = [first];
  const constants = first.kind === "MatrixMultiply" ? [first.inputs[1].producer!] : [];
  let t = first.outputs[0];
  for (let next = soleReader(net, t); next; next = soleReader(net, t)) {
    const s = stages[stages.length - 1];
    if (foldEpilogue(s, next, t)) {
      if (next.kind === "ElementWise") {
        constants.push(next.inputs.find((i) => i !== t)!.producer!);
      }
    } else {
      if (stages.length === FUSED_MLP_MAX_STAGES) break;
      const g = gemmStage(next, t);
      if (!g || g.axis !== t.dims.length - 1 || g.stage.inputs !== s.outputs) break;
      stages.push(g.stage);
      if (next.kind === "MatrixMultiply") constants.push(next.inputs[1].producer!);
    }
    chain.push(next);
    t = next.outputs[0];
  }
  // Layers folded after the last GEMM stage stay in the chain: they are part of its epilogue.
  return stages.length >= 2 ? { chain, stages, axis: start.axis, constants } : undefined;
}

function describe(stages: Stage[]): string {
  return [stages[0].inputs, ...stages.map((s) => s.outputs)].join("→");
}

export const fuseMlp: Pass = {
  name: "fuseMlp",
  description: "fuse chains of fully connected / matrix-multiply stages into one MLP layer",
  level: 1,
  requires: [],
  run({ network, supports }) {
    if (!supports("FusedMlp")) return [];
    const changes: string[] = [];
    for (const l of [...network.layers]) {
      if (!network.layers.includes(l)) continue;
      const found = findChain(network, l);
      if (!found) continue;
      const { chain, stages, axis, constants } = found;
      const weights = new Map<string, Weights>();
      const attrsStages: FusedMlpStage[] = stages.map((s, i) => {
        const slots = stageSlots(i);
        weights.set(slots.weights, { dtype: "float32", values: s.weights });
        if (s.bias) weights.set(slots.bias, { dtype: "float32", values: s.bias });
        return s.activation
          ? { outputs: s.outputs, activation: s.activation }
          : { outputs: s.outputs };
      });
      const names = chain.map((c) => `"${c.name}"`).join(", ");
      const fused = replaceChain(
        network,
        chain,
        "FusedMlp",
        { axis, stages: attrsStages },
        weights,
        [chain[0].inputs[0]],
      );
      // Weight matrices and bias constants now inside the fused layer, unless read elsewhere.
      for (const c of new Set(constants)) {
        const out = c.outputs[0];
        if (network.outputs.includes(out) || network.consumers(out).length) continue;
        network.removeLayer(c);
        network.tensors.delete(out.name);
      }
      changes.push(
        `fused ${chain.length} layers (${names}) into one MLP layer "${fused.name}" of ${stages.length} stages (${
          describe(stages)
        } features)`,
      );
    }
    return changes;
  },
};
