import assert from "node:assert/strict";
import { planMemory } from "../../builder/memory.ts";
import { buildEngine } from "../../builder/build.ts";
import { N } from "../../dsl/ir/dims.ts";
import { Network } from "../../dsl/network.ts";
import type { Manifest } from "../../plan/mod.ts";
import { Logger } from "../../runtime/logger.ts";
import { randomArray, rng } from "../_util.ts";

/** Independent check: tensors live at the same time never share a byte. */
function assertNoLiveOverlap(
  tensors: Manifest["tensors"],
  layers: { inputs: number[]; outputs: number[] }[],
  bindings: Manifest["bindings"],
  maxBatch: number,
): void {
  const plan = planMemory(tensors, layers, bindings, maxBatch);
  const size = (i: number) =>
    tensors[i].dims.reduce<number>((a, d) => a * (d === "N" ? maxBatch : d), 1) * 4;
  // live[i] = set of step indices at which tensor i must hold its value.
  const live = tensors.map(() => new Set<number>());
  layers.forEach((l, s) => [...l.inputs, ...l.outputs].forEach((t) => live[t].add(s)));
  for (const b of bindings) {
    for (let s = -1; s <= layers.length; s++) {
      if (
        (b.isInput && s <= Math.max(...live[b.tensor], -1)) ||
        (!b.isInput && s >= Math.min(...live[b.tensor]))
      ) {
        live[b.tensor].add(s);
      }
    }
  }
  const span = (i: number) => [Math.min(...live[i]), Math.max(...live[i])];
  for (let i = 0; i < tensors.length; i++) {
    for (let j = i + 1; j < tensors.length; j++) {
      const [a0, a1] = span(i), [b0, b1] = span(j);
      if (a0 > b1 || b0 > a1) continue;
      const oi = plan.offsets[i], oj = plan.offsets[j];
      const disjoint = oi + size(i) <= oj || oj + size(j) <= oi;
      assert.ok(disjoint, `tensors ${i} and ${j} are live together but overlap in the arena`);
    }
    assert.ok(plan.offsets[i] + size(i) <= plan.arenaBytes);
  }
  assert.ok(plan.arenaBytes <= plan.naiveBytes);
}

Deno.test("planMemory reuses memory along a chain and never overlaps live tensors", () => {
  const t = (n: number) => ({
    name: `t${n}`,
    dims: ["N" as const, 64 * (n + 1)],
    dtype: "float32" as const,
  });
  const tensors = [0, 1, 2, 3, 4, 5].map(t);
  const layers = [0, 1, 2, 3, 4].map((i) => ({ inputs: [i], outputs: [i + 1] }));
  const bindings = [{ name: "t0", tensor: 0, isInput: true }, {
    name: "t5",
    tensor: 5,
    isInput: false,
  }];
  assertNoLiveOverlap(tensors, layers, bindings, 4);
  const plan = planMemory(tensors, layers, bindings, 4);
  assert.ok(
    plan.arenaBytes < plan.naiveBytes,
    `arena ${plan.arenaBytes} should be below ${plan.naiveBytes}`,
  );
});

Deno.test("planMemory handles branches (a tensor read by a later layer stays live)", () => {
  const r = rng(7);
  for (let trial = 0; trial < 50; trial++) {
    const n = 3 + Math.floor(r() * 10);
    const tensors = Array.from({ length: n + 1 }, (_, i) => ({
      name: `t${i}`,
      dims: [1 + Math.floor(r() * 300)],
      dtype: "float32" as const,
    }));
    // Layer i writes tensor i+1 and reads one or two earlier tensors.
    const layers = Array.from({ length: n }, (_, i) => ({
      inputs: [...new Set([Math.floor(r() * (i + 1)), Math.floor(r() * (i + 1))])],
      outputs: [i + 1],
    }));
    const bindings = [{ name: "t0", tensor: 0, isInput: true }, {
      name: `t${n}`,
      tensor: n,
      isInput: false,
    }];
    assertNoLiveOverlap(tensors, layers, bindings, 1);
  }
});

Deno.test("buildEngine reports the memory plan and runs correctly with shared buffers", async () => {
  const r = rng(3);
  const net = new Network();
  let x = net.input("x", [N, 32]);
  const ref: { w: Float32Array; b: Float32Array }[] = [];
  for (let i = 0; i < 6; i++) {
    const w = randomArray(32 * 32, r, -0.3, 0.3), b = randomArray(32, r);
    ref.push({ w, b });
    x = x.fc({ outputs: 32, weights: w, bias: b }).tanh();
  }
  net.markOutput(x, "y");
  const engine = await buildEngine(net, {
    device: "cpu",
    maxBatchSize: 2,
    logger: new Logger("error"),
    disablePasses: ["fuseMlp"], // keep the six layers: fused, no tensor is left to share
  });
  assert.ok(engine.memory.activationBytes < engine.memory.naiveActivationBytes);
  const input = randomArray(64, r);
  const { y } = await engine.createContext().execute({ x: input });
  // Reference: the same chain in float64.
  for (let item = 0; item < 2; item++) {
    let v = Array.from(input.subarray(item * 32, item * 32 + 32));
    for (const { w, b } of ref) {
      v = Array.from(
        { length: 32 },
        (_, o) => Math.tanh(v.reduce((a, xi, k) => a + xi * w[o * 32 + k], b[o])),
      );
    }
    v.forEach((e, o) =>
      assert.ok(Math.abs(y[item * 32 + o] - e) < 1e-5, `item ${item} output ${o}`)
    );
  }
});
