/**
 * The network of the alias tests (tests/builder/aliases_test.ts, tests/gpu/aliases.ts): Constants
 * feeding Gather, MatrixMultiply and ElementWise, reshapes of inputs, of computed tensors and of
 * constants, and bindings that keep their copies, with its outputs by direct formulas.
 */
import { N, Network } from "../../dsl/network.ts";
import { randomArray, rng } from "../_util.ts";

export const V = 6, F = 4;

export interface Values {
  table: Float32Array;
  w: Float32Array;
  bias: Float32Array;
  scale: Float32Array;
  shift: Float32Array;
  k: Float32Array;
}

/**
 *   idx int32 [N, 2] → Gather(Constant table [6, 4]) → reshape [N, 8] → · Constant scale [1, 8]
 *     + reshape(Constant shift [2, 4]) [1, 8] → "z"
 *   x [N, 3, 4] → reshape [N, 12] → MatrixMultiply(Constant w [12, 5]) + Constant bias [1, 5] → "y"
 *   x → reshape [N, 2, 6] → "xr" (a binding: keeps its copy); Constant k [2, 3] → "k" (likewise)
 */
export function aliasNetwork(seed = 3): { net: Network; v: Values } {
  const r = rng(seed);
  const v: Values = {
    table: randomArray(V * F, r, -2, 2),
    w: randomArray(12 * 5, r),
    bias: randomArray(5, r),
    scale: randomArray(8, r, 0.5, 2),
    shift: randomArray(8, r),
    k: randomArray(6, r),
  };
  const net = new Network();
  const idx = net.input("idx", [N, 2], "int32");
  const x = net.input("x", [N, 3, F]);
  const table = net.addConstant([], { name: "table", dims: [V, F], values: v.table });
  const scale = net.addConstant([], { name: "scale", dims: [1, 8], values: v.scale });
  const shift = net.addConstant([], { name: "shift", dims: [2, F], values: v.shift });
  const z = table.output(0).gather(idx).reshape([0, -1]).mul(scale.output(0))
    .add(shift.output(0).reshape([1, 8]));
  const w = net.addConstant([], { name: "w", dims: [12, 5], values: v.w });
  const bias = net.addConstant([], { name: "bias", dims: [1, 5], values: v.bias });
  const y = x.reshape([0, -1]).matmul(w.output(0)).add(bias.output(0));
  const k = net.addConstant([], { name: "k", dims: [2, 3], values: v.k });
  net.markOutput(z, "z");
  net.markOutput(y, "y");
  net.markOutput(x.reshape([0, 2, 6]), "xr");
  net.markOutput(k.output(0), "k");
  return { net, v };
}

export function aliasReference(v: Values, idx: Int32Array, x: Float32Array, batch: number) {
  const z = new Float32Array(batch * 8), y = new Float32Array(batch * 5);
  for (let b = 0; b < batch; b++) {
    for (let j = 0; j < 8; j++) {
      const row = idx[b * 2 + Math.floor(j / F)];
      z[b * 8 + j] = v.table[row * F + (j % F)] * v.scale[j] + v.shift[j];
    }
    for (let o = 0; o < 5; o++) {
      let s = v.bias[o];
      for (let i = 0; i < 12; i++) s += x[b * 12 + i] * v.w[i * 5 + o];
      y[b * 5 + o] = s;
    }
  }
  return { z, y, xr: x, k: v.k };
}

/** Without constant folding and elementwise fusion, ElementWise layers read the constants. */
export const UNFUSED = ["foldConstants", "fuseElementwiseChain"];
