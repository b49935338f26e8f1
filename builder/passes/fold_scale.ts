/**
 * Folds a per-channel (or uniform) Scale without power into the weights and bias of the
 * Convolution or FullyConnected before it: s·(W·x + b) + t = (s·W)·x + (s·b + t). Caffe's
 * BatchNorm + Scale arrive as one such Scale.
 */
import type { Layer } from "../../dsl/ir/graph.ts";
import type { Pass } from "../pass.ts";
import { absorbLayer, hasSingleReader } from "./_rewrite.ts";

function coefficient(w: Float32Array | undefined, c: number, fallback: number): number {
  if (!w) return fallback;
  return w.length === 1 ? w[0] : w[c];
}

export const foldScale: Pass = {
  name: "foldScale",
  description:
    "fold per-channel scales (and BatchNorm folded into them) into convolution/FC weights",
  level: 1,
  requires: [],
  run({ network }) {
    const changes: string[] = [];
    for (const s of [...network.layers]) {
      if (s.kind !== "Scale" || !network.layers.includes(s)) continue;
      const host = s.inputs[0].producer as Layer | undefined;
      if (!host || (host.kind !== "Convolution" && host.kind !== "FullyConnected")) continue;
      if (host.attrs.activation || host.attrs.residual || !hasSingleReader(network, s.inputs[0])) {
        continue;
      }
      const power = s.weights.get("power")?.values as Float32Array | undefined;
      if (power && power.some((p) => p !== 1)) continue;
      const mode = s.attrs.mode;
      const outDims = host.outputs[0].dims;
      const channelAxis = host.kind === "Convolution" ? 1 : outDims.length - 1;
      if (mode === "elementwise" || (mode === "channel" && s.attrs.channelAxis !== channelAxis)) {
        continue;
      }
      const scale = s.weights.get("scale")?.values as Float32Array | undefined;
      const shift = s.weights.get("shift")?.values as Float32Array | undefined;
      const w = host.weights.get("weights")!.values as Float32Array;
      const b = host.weights.get("bias")?.values as Float32Array | undefined;
      const k = outDims[channelAxis] as number;
      const per = w.length / k;
      const w2 = new Float32Array(w.length), b2 = new Float32Array(k);
      for (let c = 0; c < k; c++) {
        const sc = coefficient(scale, c, 1), sh = coefficient(shift, c, 0);
        for (let i = 0; i < per; i++) w2[c * per + i] = w[c * per + i] * sc;
        b2[c] = (b ? b[c] : 0) * sc + sh;
      }
      host.weights.set("weights", { dtype: "float32", values: w2 });
      host.weights.set("bias", { dtype: "float32", values: b2 });
      const name = s.name;
      absorbLayer(network, host, s);
      changes.push(`folded scale "${name}" into the weights of "${host.name}"`);
    }
    return changes;
  },
};
