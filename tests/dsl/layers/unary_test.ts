import assert from "node:assert/strict";
import { KilnError } from "../../../errors.ts";
import { type Dims, N } from "../../../dsl/ir/dims.ts";
import type { DType } from "../../../dsl/ir/dtype.ts";
import { Network } from "../../../dsl/network.ts";
import type { UnaryOp } from "../../../dsl/layers/unary.ts";
import { erf } from "../../../runtime/cpu/unary.ts";
import { assertClose, randomArray, rng, runOnCpu } from "../../_util.ts";

/**
 * erf by its power series erf(x) = 2/√π · e^(-x²) · Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)): every term
 * is positive, so there is no cancellation; beyond |x| = 6, erf is ±1 to double precision.
 */
function erfSeries(x: number): number {
  if (Math.abs(x) > 6) return Math.sign(x);
  let term = x, sum = x;
  for (let n = 1; n < 1000 && Math.abs(term) > 1e-18 * Math.abs(sum); n++) {
    term *= (2 * x * x) / (2 * n + 1);
    sum += term;
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * sum;
}

/** Halves to even, written from the definition. */
function roundEvenRef(v: number): number {
  const f = Math.floor(v), diff = v - f;
  if (diff < 0.5) return f;
  if (diff > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** Direct formulas (the definitions, not the kernel's library calls where one exists). */
const REFERENCE: Record<Exclude<UnaryOp, "not">, (x: number) => number> = {
  exp: Math.exp,
  log: Math.log,
  sqrt: (x) => Math.pow(x, 0.5),
  recip: (x) => 1 / x,
  abs: (x) => (x < 0 ? -x : x),
  neg: (x) => 0 - x,
  sin: Math.sin,
  cos: Math.cos,
  tan: (x) => Math.sin(x) / Math.cos(x),
  sinh: (x) => (Math.exp(x) - Math.exp(-x)) / 2,
  cosh: (x) => (Math.exp(x) + Math.exp(-x)) / 2,
  asin: (x) => Math.atan2(x, Math.sqrt(1 - x * x)),
  acos: (x) => Math.atan2(Math.sqrt(1 - x * x), x),
  atan: (x) => Math.atan2(x, 1),
  asinh: (x) => Math.log(x + Math.sqrt(x * x + 1)),
  acosh: (x) => Math.log(x + Math.sqrt(x * x - 1)),
  atanh: (x) => 0.5 * Math.log((1 + x) / (1 - x)),
  ceil: (x) => -Math.floor(-x),
  floor: Math.floor,
  round: roundEvenRef,
  erf: erfSeries,
  sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : 0),
};

/** Where each op is defined (and well conditioned), for random inputs. */
const DOMAIN: Partial<Record<UnaryOp, [number, number]>> = {
  exp: [-5, 5],
  log: [0.05, 5],
  sqrt: [0.05, 5],
  recip: [0.2, 4],
  tan: [-1.4, 1.4],
  asin: [-0.95, 0.95],
  acos: [-0.95, 0.95],
  atanh: [-0.95, 0.95],
  acosh: [1.05, 5],
  round: [-5, 5],
  ceil: [-5, 5],
  floor: [-5, 5],
  erf: [-4.5, 4.5],
};

async function runUnary(dims: Dims, data: Float32Array | Int32Array, op: UnaryOp, dtype: DType) {
  const net = new Network();
  const x = net.input("x", dims, dtype);
  net.markOutput(net.addUnary(x, { op }).output(), "y");
  return (await runOnCpu(net, { x: data })).y;
}

function expectKilnError(f: () => unknown, layer: string, pattern: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
    assert.equal(e.layer, layer);
    assert.match(e.message, new RegExp(`Unary layer "${layer}"`));
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("Unary matches direct formulas on random inputs, batch 3 of N", async () => {
  const r = rng(13);
  for (const op of Object.keys(REFERENCE) as Exclude<UnaryOp, "not">[]) {
    const [lo, hi] = DOMAIN[op] ?? [-3, 3];
    const data = randomArray(3 * 4 * 5, r, lo, hi);
    const got = await runUnary([N, 4, 5], data, op, "float32");
    assert.ok(got instanceof Float32Array);
    const want = Array.from(data, (v) => Math.fround(REFERENCE[op](v)));
    // Kernel and reference both round a double result to float32: at most one float32 ulp apart.
    assertClose(got, want, { rtol: 2.5e-7, atol: 1e-7 }, op);
  }
});

Deno.test("Unary hand-derived cases", async () => {
  const run = (op: UnaryOp, xs: number[]) =>
    runUnary([xs.length], new Float32Array(xs), op, "float32").then((y) => [...y]);
  assert.deepEqual(
    await run("round", [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, 3.5001]),
    [0, 2, 2, -0, -2, -2, 2, 4],
  );
  assert.deepEqual(await run("ceil", [-1.5, 1.5, 2]), [-1, 2, 2]);
  assert.deepEqual(await run("floor", [-1.5, 1.5, 2]), [-2, 1, 2]);
  assert.deepEqual(await run("sign", [-3, 0, 2]), [-1, 0, 1]);
  assert.deepEqual(await run("recip", [4, -0.5, 0]), [0.25, -2, Infinity]);
  assert.deepEqual(await run("abs", [-2, 3]), [2, 3]);
  assert.deepEqual(await run("neg", [-2, 3]), [2, -3]);
  assert.deepEqual(await run("sqrt", [9, 0.25]), [3, 0.5]);
  assert.ok(Number.isNaN((await run("log", [-1]))[0]));
  // erf(1) = 0.8427007929497149, erf(-0.5) = -0.5204998778130465 (tables).
  assertClose(await run("erf", [0, 1, -0.5]), [0, 0.8427007929497149, -0.5204998778130465], {
    rtol: 0,
    atol: 6e-8,
  });
});

Deno.test("Unary erf is accurate to 1e-7 absolute over the whole line", () => {
  let worst = 0;
  for (let i = -20000; i <= 20000; i++) {
    const x = i * 4e-4; // [-8, 8], crossing Cody's breakpoints 0.46875 and 4
    worst = Math.max(worst, Math.abs(erf(x) - erfSeries(x)));
  }
  for (const x of [1e-30, -1e-20, 0.46875, 4, 26.6, -30, Infinity, -Infinity]) {
    worst = Math.max(worst, Math.abs(erf(x) - erfSeries(x)));
  }
  assert.ok(worst < 1e-13, `worst erf error ${worst}`);
  assert.ok(Number.isNaN(erf(NaN)));
});

Deno.test("Unary on int32: abs, neg, sign and not (booleans as 0/1)", async () => {
  const data = new Int32Array([-7, 0, 5, -2147483648, 1]);
  const run = (op: UnaryOp) => runUnary([N, 5], data, op, "int32").then((y) => [...y]);
  assert.deepEqual(await run("abs"), [7, 0, 5, -2147483648, 1]);
  assert.deepEqual(await run("neg"), [7, 0, -5, -2147483648, -1]);
  assert.deepEqual(await run("sign"), [-1, 0, 1, -1, 1]);
  assert.deepEqual(await run("not"), [0, 1, 0, 0, 0]);
  const batch2 = await runUnary([N, 5], new Int32Array([...data, ...data]), "abs", "int32");
  assert.ok(batch2 instanceof Int32Array);
  assert.equal(batch2.length, 10);
});

Deno.test("Unary shortcuts: unary, exp, log, sqrt, abs, neg, recip", async () => {
  const r = rng(17);
  const data = randomArray(2 * 6, r, 0.1, 2);
  const net = new Network();
  const x = net.input("x", [N, 6]);
  const outs = {
    exp: x.exp(),
    log: x.log(),
    sqrt: x.sqrt(),
    abs: x.abs(),
    neg: x.neg(),
    recip: x.recip(),
    cosh: x.unary("cosh"),
  };
  for (const [name, t] of Object.entries(outs)) {
    assert.deepEqual(t.dims, [N, 6]);
    net.markOutput(t, name);
  }
  const got = await runOnCpu(net, { x: data });
  for (const name of Object.keys(outs) as (keyof typeof outs)[]) {
    const want = Array.from(data, (v) => Math.fround(REFERENCE[name](v)));
    assertClose(got[name], want, { rtol: 2.5e-7, atol: 1e-7 }, name);
  }
});

Deno.test("Unary rejects bad ops and dtypes with errors naming the layer", () => {
  const net = new Network();
  const f = net.input("f", [N, 3]);
  const i = net.input("i", [N, 3], "int32");
  expectKilnError(
    // @ts-expect-error: "gelu" is not a unary op
    () => net.addUnary(f, { op: "gelu", name: "u_op" }),
    "u_op",
    /attribute "op"/,
  );
  // @ts-expect-error: op is required
  expectKilnError(() => net.addUnary(f, { name: "u_none" }), "u_none", /attribute "op"/);
  expectKilnError(() => net.addUnary(f, { op: "not", name: "u_not" }), "u_not", /needs an int32/);
  expectKilnError(
    () => net.addUnary(i, { op: "exp", name: "u_intexp" }),
    "u_intexp",
    /exp is not defined on int32/,
  );
  const h = net.input("h", [3], "float16");
  expectKilnError(
    () => net.addUnary(h, { op: "abs", name: "u_half" }),
    "u_half",
    /float16; expected float32 or int32/,
  );
});
