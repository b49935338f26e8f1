import assert from "node:assert/strict";
import { buildEngine } from "../../../builder/build.ts";
import { KilnError } from "../../../errors.ts";
import { N, Network } from "../../../dsl/network.ts";
import { Logger } from "../../../runtime/logger.ts";
import { assertClose, randomArray, rng, runOnCpu } from "../../_util.ts";

interface Geometry {
  c: number;
  h: number;
  w: number;
  outputs: number;
  kernel: [number, number];
  stride: [number, number];
  padding: [number, number];
  postPadding: [number, number];
  dilation: [number, number];
  groups: number;
}

interface Epilogue {
  activation?: { type: "relu" | "leaky_relu" | "sigmoid"; alpha?: number };
  residual?: "pre" | "post";
}

function act(e: Epilogue, v: number): number {
  switch (e.activation?.type) {
    case undefined:
      return v;
    case "relu":
      return Math.max(0, v);
    case "leaky_relu":
      return v >= 0 ? v : (e.activation.alpha ?? 0.01) * v;
    case "sigmoid":
      return 1 / (1 + Math.exp(-v));
  }
}

/**
 * The direct definition in float64, seven loops: y[b,o,oy,ox] = bias[o] + Σ_{c in o's group, i, j}
 * x[b, c, oy·sh - ph + i·dh, ox·sw - pw + j·dw] · W[o, c - group start, i, j], zero outside the
 * image; then the epilogue act(y [+ r if pre]) [+ r if post].
 */
function referenceConv(
  g: Geometry,
  batch: number,
  x: ArrayLike<number>,
  wt: ArrayLike<number>,
  bias?: ArrayLike<number>,
  epilogue: Epilogue = {},
  residual?: ArrayLike<number>,
): { dims: number[]; y: Float64Array } {
  const { c, h, w, outputs: k, groups } = g;
  const [kh, kw] = g.kernel, [sh, sw] = g.stride, [ph, pw] = g.padding;
  const [qh, qw] = g.postPadding, [dh, dw] = g.dilation;
  const oh = Math.floor((h + ph + qh - dh * (kh - 1) - 1) / sh) + 1;
  const ow = Math.floor((w + pw + qw - dw * (kw - 1) - 1) / sw) + 1;
  const cg = c / groups, kg = k / groups;
  const y = new Float64Array(batch * k * oh * ow);
  for (let b = 0; b < batch; b++) {
    for (let o = 0; o < k; o++) {
      const c0 = Math.floor(o / kg) * cg;
      for (let oy = 0; oy < oh; oy++) {
        for (let ox = 0; ox < ow; ox++) {
          let acc = bias ? bias[o] : 0;
          for (let ci = 0; ci < cg; ci++) {
            for (let i = 0; i < kh; i++) {
              const iy = oy * sh - ph + i * dh;
              if (iy < 0 || iy >= h) continue;
              for (let j = 0; j < kw; j++) {
                const ix = ox * sw - pw + j * dw;
                if (ix < 0 || ix >= w) continue;
                acc += x[((b * c + c0 + ci) * h + iy) * w + ix] *
                  wt[((o * cg + ci) * kh + i) * kw + j];
              }
            }
          }
          const at = ((b * k + o) * oh + oy) * ow + ox;
          const r = residual ? residual[at] : 0;
          let v = act(epilogue, epilogue.residual === "pre" ? acc + r : acc);
          if (epilogue.residual === "post") v += r;
          y[at] = v;
        }
      }
    }
  }
  return { dims: [batch, k, oh, ow], y };
}

function geometry(over: Partial<Geometry>): Geometry {
  return {
    c: 3,
    h: 7,
    w: 6,
    outputs: 4,
    kernel: [3, 3],
    stride: [1, 1],
    padding: [0, 0],
    postPadding: [0, 0],
    dilation: [1, 1],
    groups: 1,
    ...over,
  };
}

// float32 GEMM accumulation over at most a few hundred terms of magnitude ≤ 1.
const TOL = { rtol: 1e-5, atol: 2e-5 };

/**
 * Builds one Convolution on [N, c, h, w] and checks it against the reference at batch 1 and 3
 * on the same engine (the symbolic batch), with the residual as a second network input.
 */
async function checkConv(g: Geometry, seed: number, epilogue: Epilogue = {}, withBias = true) {
  const r = rng(seed);
  const wt = randomArray(g.outputs * (g.c / g.groups) * g.kernel[0] * g.kernel[1], r);
  const bias = withBias ? randomArray(g.outputs, r) : undefined;
  const net = new Network();
  const x = net.input("x", [N, g.c, g.h, g.w]);
  const probe = referenceConv(g, 1, new Float32Array(g.c * g.h * g.w), wt);
  const [, k, oh, ow] = probe.dims;
  const inputs = [x];
  if (epilogue.residual) inputs.push(net.input("r", [N, k, oh, ow]));
  const layer = net.addConvolution(inputs, {
    name: "conv",
    outputs: g.outputs,
    kernel: g.kernel,
    stride: g.stride,
    padding: g.padding,
    postPadding: g.postPadding,
    dilation: g.dilation,
    groups: g.groups,
    weights: wt,
    bias,
    ...epilogue,
  });
  assert.deepEqual(layer.output(0).dims, [N, k, oh, ow]);
  net.markOutput(layer.output(0), "y");
  const engine = await buildEngine(net, {
    device: "cpu",
    maxBatchSize: 3,
    disablePasses: "all",
    logger: new Logger("error"),
  });
  using ctx = engine.createContext();
  for (const batch of [1, 3]) {
    const xd = randomArray(batch * g.c * g.h * g.w, r);
    const rd = epilogue.residual ? randomArray(batch * k * oh * ow, r) : undefined;
    const out = await ctx.execute(rd ? { x: xd, r: rd } : { x: xd });
    const want = referenceConv(g, batch, xd, wt, bias, epilogue, rd);
    assertClose(out.y as Float32Array, want.y, TOL, `${JSON.stringify(g)} batch ${batch}`);
  }
  engine[Symbol.dispose]();
}

Deno.test("Convolution 3x3, stride 1, no padding, with and without bias", async () => {
  await checkConv(geometry({}), 1);
  await checkConv(geometry({}), 2, {}, false);
});

Deno.test("Convolution symmetric padding and strides", async () => {
  await checkConv(geometry({ padding: [1, 1], postPadding: [1, 1] }), 3);
  await checkConv(geometry({ stride: [2, 3], padding: [1, 2], postPadding: [1, 2] }), 4);
});

Deno.test("Convolution asymmetric postPadding", async () => {
  await checkConv(geometry({ padding: [0, 1], postPadding: [2, 0] }), 5);
  await checkConv(geometry({ padding: [2, 0], postPadding: [0, 3], stride: [2, 2] }), 6);
});

Deno.test("Convolution dilation", async () => {
  await checkConv(
    geometry({ h: 9, w: 8, dilation: [2, 3], padding: [2, 1], postPadding: [2, 1] }),
    7,
  );
  await checkConv(geometry({ h: 9, w: 9, kernel: [2, 3], dilation: [3, 2], stride: [2, 1] }), 8);
});

Deno.test("Convolution groups and depthwise", async () => {
  await checkConv(
    geometry({ c: 4, outputs: 6, groups: 2, padding: [1, 1], postPadding: [1, 1] }),
    9,
  );
  await checkConv(geometry({ c: 5, outputs: 10, groups: 5, kernel: [3, 2] }), 10);
  await checkConv(
    geometry({ c: 6, outputs: 3, groups: 3, stride: [2, 2], dilation: [2, 2], padding: [2, 2] }),
    11,
  );
});

Deno.test("Convolution 1x1 and a kernel covering the padded image", async () => {
  await checkConv(geometry({ kernel: [1, 1], outputs: 5 }), 12);
  await checkConv(
    geometry({ h: 3, w: 2, kernel: [5, 4], padding: [1, 1], postPadding: [1, 1] }),
    13,
  );
});

Deno.test("Convolution large enough to cross the GEMM blocks (K > 128, N > 256)", async () => {
  await checkConv(
    geometry({ c: 16, h: 20, w: 21, outputs: 7, padding: [1, 1], postPadding: [1, 1] }),
    14,
  );
});

Deno.test("Convolution epilogue: activation, residual pre and post", async () => {
  const g = geometry({ padding: [1, 1], postPadding: [1, 1] });
  await checkConv(g, 15, { activation: { type: "relu" } });
  await checkConv(g, 16, { activation: { type: "leaky_relu", alpha: 0.2 } });
  await checkConv(g, 17, { residual: "pre" });
  await checkConv(g, 18, { residual: "post" });
  await checkConv(g, 19, { residual: "pre", activation: { type: "relu" } });
  await checkConv(g, 20, { residual: "post", activation: { type: "sigmoid" } });
});

Deno.test("Convolution residual pre and post differ as the formula says (hand values)", async () => {
  // 1x1 input, 1x1 kernel weight 2, bias -1: pre-activation value 2·x - 1.
  const run = async (residual: "pre" | "post") => {
    const net = new Network();
    const x = net.input("x", [1, 1, 1, 1]);
    const r = net.input("r", [1, 1, 1, 1]);
    const y = net.addConvolution([x, r], {
      outputs: 1,
      kernel: 1,
      weights: [2],
      bias: [-1],
      activation: { type: "relu" },
      residual,
    }).output(0);
    net.markOutput(y, "y");
    return (await runOnCpu(net, { x: Float32Array.of(1), r: Float32Array.of(-3) })).y[0];
  };
  assert.equal(await run("pre"), 0); // relu(2 - 1 - 3)
  assert.equal(await run("post"), -2); // relu(2 - 1) - 3
});

Deno.test("Convolution hand-derived 2x2 sums", async () => {
  const net = new Network();
  const x = net.input("x", [1, 1, 3, 3]);
  net.markOutput(x.conv({ outputs: 1, kernel: 2, weights: [1, 1, 1, 1] }), "y");
  const { y } = await runOnCpu(net, { x: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]) });
  assert.deepEqual(Array.from(y), [12, 16, 24, 28]);
  // stride 2 with one pixel of padding: the four corners of the padded 5x5 sweep.
  const net2 = new Network();
  const x2 = net2.input("x", [1, 1, 3, 3]);
  net2.markOutput(
    x2.conv({ outputs: 1, kernel: 2, stride: 2, padding: 1, weights: [1, 1, 1, 1] }),
    "y",
  );
  const r2 = await runOnCpu(net2, { x: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]) });
  assert.deepEqual(Array.from(r2.y), [1, 5, 11, 28]);
});

function expectAttrError(f: () => unknown, code: string, ...patterns: RegExp[]): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.layer, "bad");
    assert.match(e.message, /Convolution layer "bad"/);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

Deno.test("Convolution rejects bad attributes naming layer, attribute, value and what is allowed", () => {
  const net = new Network();
  const x = net.input("x", [N, 4, 8, 8]);
  const w = (n: number) => new Float32Array(n).fill(0.5);
  const add = (args: Record<string, unknown>, inputs = [x]) => () =>
    net.addConvolution(inputs, { name: "bad", ...args } as never);
  expectAttrError(
    add({ outputs: 0, kernel: 3, weights: w(1) }),
    "INVALID_ATTRIBUTE",
    /attribute "outputs"/,
    />0/,
    /given: 0/,
  );
  expectAttrError(
    add({ outputs: 2, kernel: 1.5, weights: w(8) }),
    "INVALID_ATTRIBUTE",
    /attribute "kernel"/,
    /positive integer/,
    /given: 1.5/,
  );
  expectAttrError(
    add({ outputs: 2, kernel: 3, stride: 0, weights: w(72) }),
    "INVALID_ATTRIBUTE",
    /attribute "stride"/,
    /positive integer/,
    /given: 0/,
  );
  expectAttrError(
    add({ outputs: 2, kernel: 3, padding: [-1, 0], weights: w(72) }),
    "INVALID_ATTRIBUTE",
    /attribute "padding/,
    /given: (-1|\[-1,0\])/,
  );
  expectAttrError(
    add({ outputs: 2, kernel: 3, residual: "middle", weights: w(72) }),
    "INVALID_ATTRIBUTE",
    /attribute "residual"/,
    /"pre"\|"post"/,
    /given: "middle"/,
  );
  expectAttrError(
    add({ outputs: 3, kernel: 3, groups: 2, weights: w(54) }),
    "SHAPE_MISMATCH",
    /channels \(4\) and outputs \(3\) must divide by groups \(2\)/,
  );
  expectAttrError(
    add({ outputs: 2, kernel: 3, weights: w(10) }),
    "INVALID_ARGUMENT",
    /weights "weights" have 10 values; expected 72 \(dims \[2,4,3,3\]\)/,
  );
  expectAttrError(
    add({ outputs: 2, kernel: 3 }),
    "INVALID_ARGUMENT",
    /weights "weights" are missing/,
  );
  expectAttrError(
    add({ outputs: 2, kernel: 9, weights: w(2 * 4 * 81) }),
    "SHAPE_MISMATCH",
    /the output would be empty/,
  );
  expectAttrError(
    add({ outputs: 2, kernel: 3, residual: "pre", weights: w(72) }),
    "SHAPE_MISMATCH",
    /a residual epilogue needs a second input/,
  );
  const wrongShape = net.input("r", [N, 2, 5, 5]);
  expectAttrError(
    add({ outputs: 2, kernel: 3, residual: "post", weights: w(72) }, [x, wrongShape]),
    "SHAPE_MISMATCH",
    /the residual input .* must match the output/,
  );
  expectAttrError(
    add({ outputs: 2, kernel: 3, weights: w(72) }, [x, wrongShape]),
    "SHAPE_MISMATCH",
    /a second input is only read by a residual epilogue/,
  );
  const rank3 = net.input("v", [N, 4, 8]);
  expectAttrError(
    add({ outputs: 2, kernel: 3, weights: w(72) }, [rank3]),
    "SHAPE_MISMATCH",
    /input 0 must have rank 4/,
  );
});
