import assert from "node:assert/strict";
import { KilnError } from "../../../errors.ts";
import { N, Network } from "../../../dsl/network.ts";
import { assertClose, randomArray, rng, runOnCpu } from "../../_util.ts";

Deno.test("Constant outputs its values with its dims and dtype (by hand)", async () => {
  const net = new Network();
  const f = net.addConstant([], { name: "f", dims: [2, 3], values: [1, 2, 3, 4, 5, 6] });
  const i = net.addConstant([], {
    name: "i",
    dims: [3],
    dtype: "int32",
    values: { dtype: "int32", values: [7, -8, 9] },
  });
  const s = net.addConstant([], { name: "s", dims: [], values: [0.5] });
  assert.deepEqual(f.output().dims, [2, 3]);
  assert.equal(i.output().dtype, "int32");
  assert.deepEqual(s.output().dims, []);
  net.markOutput(f.output(), "fo");
  net.markOutput(i.output(), "io");
  net.markOutput(s.output(), "so");
  const out = await runOnCpu(net, {});
  assert.ok(out.fo instanceof Float32Array && out.io instanceof Int32Array);
  assert.deepEqual(Array.from(out.fo), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(Array.from(out.io), [7, -8, 9]);
  assert.deepEqual(Array.from(out.so), [0.5]);
});

Deno.test("Constant feeds a batched network (N, batch 4) and keeps its own copy", async () => {
  const r = rng(3);
  const table = randomArray(12, r);
  const net = new Network();
  const x = net.input("x", [N, 3, 4]);
  const c = net.addConstant([], { dims: [3, 4], values: table }).output();
  table.fill(0); // the layer holds a copy, so this must not change the network
  net.markOutput(x.add(c), "y");
  const data = randomArray(4 * 12, r);
  const out = await runOnCpu(net, { x: data });
  const original = randomArray(12, rng(3));
  // y[b, i, j] = x[b, i, j] + table[i, j]
  assertClose(out.y, data.map((v, k) => v + original[k % 12]), { rtol: 1e-6 });
  // A second run with another batch size sees the same constant.
  const again = await runOnCpu(net, { x: data.subarray(0, 24) });
  assertClose(again.y, data.subarray(0, 24).map((v, k) => v + original[k % 12]), { rtol: 1e-6 });
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

Deno.test("Constant rejects bad dims, dtypes, values and inputs, naming the layer", () => {
  const net = new Network();
  assertKilnError(
    // deno-lint-ignore no-explicit-any
    () => net.addConstant([], { name: "c0", dims: [N as any, 2], values: [1, 2] }),
    "c0",
    "INVALID_ATTRIBUTE",
    /dims/,
  );
  assertKilnError(
    () => net.addConstant([], { name: "c1", dims: [2, 0], values: [] }),
    "c1",
    "INVALID_ATTRIBUTE",
    /dims/,
  );
  assertKilnError(
    // deno-lint-ignore no-explicit-any
    () => net.addConstant([], { name: "c2", dims: [2], dtype: "float16" as any, values: [1, 2] }),
    "c2",
    "INVALID_ATTRIBUTE",
    /dtype/,
  );
  assertKilnError(
    () => net.addConstant([], { name: "c3", dims: [2, 2], values: [1, 2, 3] }),
    "c3",
    "INVALID_ARGUMENT",
    /3 values; expected 4/,
  );
  assertKilnError(
    () => net.addConstant([], { name: "c4", dims: [2], dtype: "int32", values: [1, 2] }),
    "c4",
    "INVALID_ARGUMENT",
    /float32; expected int32/,
  );
  assertKilnError(
    () => net.addConstant([], { name: "c5", dims: [2] }),
    "c5",
    "INVALID_ARGUMENT",
    /missing/,
  );
  const x = net.input("x", [2]);
  assertKilnError(
    () => net.addConstant(x, { name: "c6", dims: [2], values: [1, 2] }),
    "c6",
    "INVALID_ARGUMENT",
    /0 input/,
  );
});
