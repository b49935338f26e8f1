/**
 * Vertical fusion into the epilogue that Convolution, Deconvolution, FullyConnected and
 * MatrixMultiply carry: y = act(x·W + bias [+ residual "pre"]) [+ residual "post"]. Three rules
 * are applied until none matches:
 *  - bias: an ElementWise sum with a Constant holding one value per output channel;
 *  - residual: an ElementWise sum of the output with another tensor of the same shape
 *    ("pre" when no activation is fused yet, "post" after one);
 *  - activation: an Activation reading the output.
 * The producer's output must have no other reader and must not be a network output.
 */
import { sameDims } from "../../dsl/ir/dims.ts";
import type { Layer, NetworkGraph, Tensor } from "../../dsl/ir/graph.ts";
import type { Pass } from "../pass.ts";
import { absorbLayer, GEMM_KINDS, hasSingleReader } from "./_rewrite.ts";

/** The GEMM-like layer producing `t` that may take more epilogue work, if any. */
function fusableHost(net: NetworkGraph, t: Tensor): Layer | undefined {
  const p = t.producer;
  if (!p || !GEMM_KINDS.has(p.kind) || p.outputs.length !== 1) return undefined;
  if (!hasSingleReader(net, t)) return undefined;
  return p;
}

/** Output channel count and the axis it lies on, for a per-channel bias. */
function channels(host: Layer): { count: number; axis: number } {
  const d = host.outputs[0].dims;
  const axis = host.kind === "Convolution" || host.kind === "Deconvolution" ? 1 : d.length - 1;
  return { count: d[axis] as number, axis };
}

/** Whether a constant of dims `c` broadcasts as one value per channel on `out`'s axis. */
function isPerChannel(
  c: readonly (number | string)[],
  out: readonly (number | string)[],
  axis: number,
): boolean {
  const aligned = out.length - c.length;
  if (aligned < 0) return false;
  return c.every((d, i) => (i + aligned === axis ? d === out[axis] : d === 1));
}

function tryBias(net: NetworkGraph, add: Layer): string | undefined {
  if (add.kind !== "ElementWise" || add.attrs.op !== "sum" || add.inputs.length !== 2) return;
  for (const [i, j] of [[0, 1], [1, 0]]) {
    const host = fusableHost(net, add.inputs[i]);
    const k = add.inputs[j].producer;
    if (!host || !k || k.kind !== "Constant" || host.attrs.activation || host.attrs.residual) {
      continue;
    }
    if (!sameDims(add.outputs[0].dims, host.outputs[0].dims)) continue;
    const { count, axis } = channels(host);
    const values = k.weights.get("values");
    if (!values || values.dtype !== "float32") continue;
    if (
      !isPerChannel(add.inputs[j].dims, host.outputs[0].dims, axis) && values.values.length !== 1
    ) continue;
    const add1 = values.values as Float32Array;
    const old = host.weights.get("bias")?.values as Float32Array | undefined;
    const bias = new Float32Array(count);
    for (let c = 0; c < count; c++) {
      bias[c] = (old ? old[c] : 0) + (add1.length === 1 ? add1[0] : add1[c]);
    }
    host.weights.set("bias", { dtype: "float32", values: bias });
    const name = add.name;
    absorbLayer(net, host, add);
    return `folded the constant "${k.name}" added by "${name}" into the bias of "${host.name}"`;
  }
}

function tryResidual(net: NetworkGraph, add: Layer): string | undefined {
  if (add.kind !== "ElementWise" || add.attrs.op !== "sum" || add.inputs.length !== 2) return;
  if (add.inputs[0] === add.inputs[1]) return;
  for (const [i, j] of [[0, 1], [1, 0]]) {
    const host = fusableHost(net, add.inputs[i]);
    if (
      !host || host.attrs.residual || host.inputs.length !== 1 && host.kind !== "MatrixMultiply"
    ) continue;
    if (host.kind === "MatrixMultiply" && host.inputs.length !== 2) continue;
    const other = add.inputs[j];
    if (!sameDims(other.dims, host.outputs[0].dims) || other.dtype !== "float32") continue;
    if (other.producer === undefined && !net.inputs.includes(other)) continue;
    host.attrs.residual = host.attrs.activation ? "post" : "pre";
    host.inputs.push(other);
    const name = add.name;
    absorbLayer(net, host, add);
    return `fused the residual add "${name}" into "${host.name}" (${host.attrs.residual} activation)`;
  }
}

function tryActivation(net: NetworkGraph, act: Layer): string | undefined {
  if (act.kind !== "Activation") return;
  const host = fusableHost(net, act.inputs[0]);
  if (!host || host.attrs.activation || host.attrs.residual === "post") return;
  host.attrs.activation = { ...act.attrs };
  const name = act.name;
  absorbLayer(net, host, act);
  return `fused activation "${name}" (${act.attrs.type}) into "${host.name}"`;
}

export const fuseEpilogue: Pass = {
  name: "fuseEpilogue",
  description: "fold bias adds, residual adds and activations into convolution/FC/matmul epilogues",
  level: 1,
  requires: [],
  run({ network }) {
    const changes: string[] = [];
    for (let changed = true; changed;) {
      changed = false;
      for (const l of [...network.layers]) {
        if (!network.layers.includes(l)) continue;
        const c = tryBias(network, l) ?? tryResidual(network, l) ?? tryActivation(network, l);
        if (c) {
          changes.push(c);
          changed = true;
        }
      }
    }
    return changes;
  },
};
