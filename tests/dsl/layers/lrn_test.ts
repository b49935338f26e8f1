import assert from "node:assert/strict";
import { KilnError } from "../../../errors.ts";
import { N, Network } from "../../../dsl/network.ts";
import { assertClose, randomArray, rng, runOnCpu } from "../../_util.ts";

interface LrnParams {
  window: number;
  alpha: number;
  beta: number;
  k: number;
}

/**
 * Direct formula over dims [..., C, H, W] (C third from the end):
 * y[..c..] = x[..c..] / (k + alpha/window · Σ_{|c'-c| <= window/2, 0 <= c' < C} x[..c'..]²)^beta.
 */
function referenceLrn(dims: number[], x: Float32Array, p: LrnParams): Float64Array {
  const rank = dims.length;
  const c = dims[rank - 3], hw = dims[rank - 2] * dims[rank - 1];
  const y = new Float64Array(x.length);
  for (let at = 0; at < x.length; at++) {
    const ch = Math.floor(at / hw) % c;
    let sum = 0;
    for (let d = -(p.window - 1) / 2; d <= (p.window - 1) / 2; d++) {
      const other = ch + d;
      if (other >= 0 && other < c) sum += x[at + d * hw] ** 2;
    }
    y[at] = x[at] / (p.k + (p.alpha / p.window) * sum) ** p.beta;
  }
  return y;
}

Deno.test("LRN normalizes across neighbouring channels (by hand, TensorRT's example)", async () => {
  const net = new Network();
  const x = net.input("x", [1, 5, 2, 2]);
  net.markOutput(x.lrn({ window: 3, alpha: 1, beta: 1, k: 0.1 }), "y");
  // Channel c holds the value c everywhere. Channel 1: 1 / (0.1 + (0²+1²+2²)/3) = 1/1.7667;
  // channel 4 (edge, window clipped): 4 / (0.1 + (3²+4²)/3) = 4/8.4333.
  const data = new Float32Array(20).map((_, i) => Math.floor(i / 4));
  const out = await runOnCpu(net, { x: data });
  const perChannel = [
    0,
    1 / (0.1 + 5 / 3),
    2 / (0.1 + 14 / 3),
    3 / (0.1 + 29 / 3),
    4 / (0.1 + 25 / 3),
  ];
  assertClose(out.y, data.map((_, i) => perChannel[Math.floor(i / 4)]), { rtol: 1e-6 });
  assertClose(out.y.slice(4, 8), [0.56603765, 0.56603765, 0.56603765, 0.56603765], { rtol: 1e-6 });
});

Deno.test("LRN matches the direct formula (N, batch 3, several windows)", async () => {
  const r = rng(5);
  const batch = 3;
  const cases: LrnParams[] = [
    { window: 5, alpha: 1e-4, beta: 0.75, k: 1 },
    { window: 1, alpha: 0.5, beta: 1, k: 2 },
    { window: 3, alpha: 2, beta: 0.5, k: 0.5 },
    { window: 15, alpha: 1.5, beta: 2, k: 1 }, // wider than the 7 channels
  ];
  for (const p of cases) {
    const net = new Network();
    const x = net.input("x", [N, 7, 3, 2]);
    net.markOutput(x.lrn(p), "y");
    const data = randomArray(batch * 42, r, -2, 2);
    const out = await runOnCpu(net, { x: data });
    assertClose(out.y, referenceLrn([batch, 7, 3, 2], data, p), { rtol: 1e-5 }, JSON.stringify(p));
  }
});

Deno.test("LRN defaults and other ranks: unbatched CHW and batched rank 5", async () => {
  const r = rng(6);
  const defaults = { window: 5, alpha: 1e-4, beta: 0.75, k: 1 };
  {
    const net = new Network();
    const x = net.input("x", [6, 2, 3]);
    const l = net.addLRN(x, { name: "norm" });
    assert.deepEqual(
      { window: l.attrs.window, alpha: l.attrs.alpha, beta: l.attrs.beta, k: l.attrs.k },
      defaults,
    );
    net.markOutput(l.output(), "y");
    const data = randomArray(36, r, -30, 30); // large enough that the normalization matters
    const out = await runOnCpu(net, { x: data });
    assertClose(out.y, referenceLrn([6, 2, 3], data, defaults), { rtol: 1e-5 });
  }
  {
    const p = { window: 3, alpha: 1, beta: 0.75, k: 1 };
    const net = new Network();
    const x = net.input("x", [N, 2, 4, 3, 2]);
    net.markOutput(x.lrn(p), "y");
    const data = randomArray(2 * 48, r);
    const out = await runOnCpu(net, { x: data }, { batchSize: 2 });
    assertClose(out.y, referenceLrn([2, 2, 4, 3, 2], data, p), { rtol: 1e-5 });
  }
});

function assertKilnError(f: () => unknown, layer: string, code: string, pattern: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
    assert.equal(e.code, code);
    assert.equal(e.layer, layer);
    assert.match(e.message, new RegExp(`"${layer}"`));
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("LRN rejects bad attributes and shapes, naming the layer", () => {
  const net = new Network();
  const x = net.input("x", [N, 4, 3, 3]);
  const bad: [string, Record<string, unknown>, RegExp][] = [
    ["l0", { window: 4 }, /window.*odd/],
    ["l1", { window: 17 }, /window/],
    ["l2", { beta: 0 }, /beta/],
    ["l3", { k: 0 }, /"k"/],
    ["l4", { alpha: "big" }, /alpha/],
  ];
  for (const [name, attrs, pattern] of bad) {
    assertKilnError(() => net.addLRN(x, { name, ...attrs }), name, "INVALID_ATTRIBUTE", pattern);
  }
  assertKilnError(
    () => net.addLRN(net.input("flat", [N, 4]), { name: "l5" }),
    "l5",
    "SHAPE_MISMATCH",
    /rank 3/,
  );
  assertKilnError(
    () => net.addLRN(net.input("seq", [N, 4, 4]), { name: "l6" }),
    "l6",
    "SHAPE_MISMATCH",
    /batch/,
  );
  assertKilnError(
    () => net.addLRN(net.input("ints", [N, 4, 3, 3], "int32"), { name: "l7" }),
    "l7",
    "SHAPE_MISMATCH",
    /int32/,
  );
});
