import assert from "node:assert/strict";
import { KilnError } from "../../../errors.ts";
import { N, Network } from "../../../dsl/network.ts";
import { randomArray, rng, runOnCpu } from "../../_util.ts";

type Mode = "constant" | "reflect" | "edge";

/**
 * Direct formula, per output element: each coordinate o of a dim of size d maps to o - pre; out
 * of [0, d) it is the fill value (constant), clamped (edge) or bounced back off the first and
 * last elements until inside (reflect).
 */
function referencePad(
  x: ArrayLike<number>,
  dims: number[],
  pre: number[],
  post: number[],
  mode: Mode,
  value: number,
): { dims: number[]; y: number[] } {
  const outDims = dims.map((d, i) => pre[i] + d + post[i]);
  const total = outDims.reduce((a, b) => a * b, 1);
  const y: number[] = [];
  for (let flat = 0; flat < total; flat++) {
    let rest = flat, src = 0, stride = 1, fill = false;
    for (let d = dims.length - 1; d >= 0; d--) {
      let i = (rest % outDims[d]) - pre[d];
      rest = Math.floor(rest / outDims[d]);
      if (i < 0 || i >= dims[d]) {
        if (mode === "constant") fill = true;
        else if (mode === "edge") i = Math.min(dims[d] - 1, Math.max(0, i));
        else {
          while (i < 0 || i >= dims[d]) i = i < 0 ? -i : 2 * (dims[d] - 1) - i;
        }
      }
      src += i * stride;
      stride *= dims[d];
    }
    y.push(fill ? value : x[src]);
  }
  return { dims: outDims, y };
}

Deno.test("Padding pads a vector in each mode, and crops (by hand)", async () => {
  const net = new Network();
  const x = net.input("x", [3]);
  net.markOutput(x.pad({ pre: [2], post: [1] }), "zero");
  net.markOutput(x.pad({ pre: [2], post: [1], mode: "reflect" }), "reflect");
  net.markOutput(x.pad({ pre: [2], post: [1], mode: "edge" }), "edge");
  net.markOutput(x.pad({ pre: [-1], post: [1], value: 9 }), "crop");
  const out = await runOnCpu(net, { x: Float32Array.from([1, 2, 3]) });
  assert.deepEqual(Array.from(out.zero), [0, 0, 1, 2, 3, 0]);
  assert.deepEqual(Array.from(out.reflect), [3, 2, 1, 2, 3, 2]);
  assert.deepEqual(Array.from(out.edge), [1, 1, 1, 2, 3, 3]);
  assert.deepEqual(Array.from(out.crop), [2, 3, 9]);
});

Deno.test("Padding matches the direct formula on batched inputs (N, batch 3)", async () => {
  const r = rng(51);
  const batch = 3;
  const cases: { pre: number[]; post: number[]; mode: Mode; value?: number }[] = [
    { pre: [1, 2], post: [2, 1], mode: "constant", value: -0.5 },
    { pre: [1, 2], post: [2, 3], mode: "reflect" },
    { pre: [2, 0], post: [1, 3], mode: "edge" },
    { pre: [1, -1, 2], post: [0, 2, -1], mode: "constant" },
    { pre: [-1, 2], post: [2, -2], mode: "reflect" },
    { pre: [0, 1, -2, 1], post: [0, -1, 3, 0], mode: "edge" }, // a 0 at the batch is allowed
    { pre: [], post: [1], mode: "constant", value: 4 },
  ];
  for (const c of cases) {
    const net = new Network();
    const x = net.input("x", [N, 2, 3, 4]);
    const y = x.pad(c);
    net.markOutput(y, "y");
    const dims = [batch, 2, 3, 4];
    const align = (p: number[]) => [...new Array(4 - p.length).fill(0), ...p];
    const data = randomArray(batch * 24, r);
    const ref = referencePad(data, dims, align(c.pre), align(c.post), c.mode, c.value ?? 0);
    assert.deepEqual(y.dims, [N, ...ref.dims.slice(1)], JSON.stringify(c));
    const out = await runOnCpu(net, { x: data });
    // Padding only moves values (or writes the fill value): exact equality.
    assert.deepEqual(Array.from(out.y), ref.y.map(Math.fround), JSON.stringify(c));
  }
});

Deno.test("Padding of an int32 tensor with a concrete batch of 2", async () => {
  const net = new Network();
  const x = net.input("x", [2, 2, 2], "int32");
  const y = net.addPadding(x, { pre: [1], post: [1], value: 7 }).output();
  net.markOutput(y, "y");
  const out = await runOnCpu(net, { x: Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8]) });
  assert.ok(out.y instanceof Int32Array);
  assert.deepEqual(y.dims, [2, 2, 4]);
  assert.deepEqual(Array.from(out.y), [7, 1, 2, 7, 7, 3, 4, 7, 7, 5, 6, 7, 7, 7, 8, 7]);
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

Deno.test("Padding rejects bad pads, modes and values, naming the layer", () => {
  const net = new Network();
  const x = net.input("x", [N, 2, 3, 4]);
  const i = net.input("i", [N, 3], "int32");
  const cases: [string, typeof x, Record<string, unknown>, string, RegExp][] = [
    ["p0", x, { pre: [1, 0, 0, 0] }, "SHAPE_MISMATCH", /batch dimension N cannot be padded/],
    ["p1", x, { post: [0, 0, 0, 0, 1] }, "SHAPE_MISMATCH", /more entries/],
    ["p2", x, { pre: [-2], post: [-2] }, "SHAPE_MISMATCH", /empty/],
    ["p3", x, { pre: [4], mode: "reflect" }, "SHAPE_MISMATCH", /at most 3/],
    ["p4", i, { post: [1], value: 0.5 }, "SHAPE_MISMATCH", /not an integer/],
    ["p5", x, { post: [1], mode: "edge", value: 2 }, "SHAPE_MISMATCH", /only used by mode/],
    ["p6", x, { post: [1], mode: "wrap" }, "INVALID_ATTRIBUTE", /mode/],
    ["p7", x, { pre: [0.5] }, "INVALID_ATTRIBUTE", /pre/],
    ["p8", net.input("h", [2], "float16"), { pre: [1] }, "SHAPE_MISMATCH", /float16/],
  ];
  for (const [name, input, attrs, code, pattern] of cases) {
    assertKilnError(() => net.addLayer("Padding", input, { name, ...attrs }), name, code, pattern);
  }
});
