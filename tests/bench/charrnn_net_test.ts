/**
 * bench/charrnn_net.ts on the CPU: one step at batch 2 of N against the LSTM equations in
 * float64, with the weights drawn again here in the order the function documents (so that a peer
 * drawing them the same way runs the same network), then a short generation loop.
 */
import assert from "node:assert/strict";
import { buildEngine } from "../../builder/build.ts";
import { Logger } from "../../runtime/logger.ts";
import { CHARRNN_BENCH, charRnnBenchNet } from "../../bench/charrnn_net.ts";
import { seeded, weights } from "../../bench/networks.ts";
import { assertClose, randomArray, rng } from "../_util.ts";

const { vocab: V, embedding: E, layers: L, hidden: H } = CHARRNN_BENCH;
const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/** The documented draw: embedding, per layer and gate (i, f, g, o) W, R, bW, bR, softmax w, b. */
function drawWeights(seed: number) {
  const r = seeded(seed);
  const embedding = weights(V * E, 1, r);
  const cells = [];
  for (let l = 0; l < L; l++) {
    const inputSize = l === 0 ? E : H;
    const gates = [];
    for (let g = 0; g < 4; g++) {
      gates.push({
        W: weights(H * inputSize, H, r),
        R: weights(H * H, H, r),
        bW: weights(H, H, r),
        bR: weights(H, H, r),
      });
    }
    cells.push(gates);
  }
  return { embedding, cells, softmaxW: weights(H * V, H, r), softmaxB: weights(V, H, r) };
}

/** One step for one item: returns [argmax, h of both layers, c of both layers]. */
function referenceStep(
  w: ReturnType<typeof drawWeights>,
  id: number,
  h0: Float32Array,
  c0: Float32Array,
): [number, number[], number[]] {
  let x: ArrayLike<number> = w.embedding.subarray(id * E, id * E + E);
  const hs: number[] = [], cs: number[] = [];
  for (let l = 0; l < L; l++) {
    const inputSize = l === 0 ? E : H;
    const hPrev = h0.subarray(l * H, l * H + H), cPrev = c0.subarray(l * H, l * H + H);
    // Gates in the draw order: input, forget, cell (g), output.
    const pre = w.cells[l].map(({ W, R, bW, bR }) =>
      Array.from({ length: H }, (_, j) => {
        let s = bW[j] + bR[j];
        for (let k = 0; k < inputSize; k++) s += W[j * inputSize + k] * x[k];
        for (let k = 0; k < H; k++) s += R[j * H + k] * hPrev[k];
        return s;
      })
    );
    const h: number[] = [];
    for (let j = 0; j < H; j++) {
      const c = sigmoid(pre[1][j]) * cPrev[j] + sigmoid(pre[0][j]) * Math.tanh(pre[2][j]);
      cs.push(c);
      h.push(sigmoid(pre[3][j]) * Math.tanh(c));
    }
    hs.push(...h);
    x = h;
  }
  let best = 0, bestLogit = -Infinity;
  for (let v = 0; v < V; v++) {
    let s = w.softmaxB[v];
    for (let j = 0; j < H; j++) s += x[j] * w.softmaxW[j * V + v];
    if (s > bestLogit) [best, bestLogit] = [v, s];
  }
  return [best, hs, cs];
}

Deno.test("charRnnBenchNet: one step at batch 2 equals the LSTM equations on the documented weights", async () => {
  using engine = await buildEngine(charRnnBenchNet(5), {
    device: "cpu",
    maxBatchSize: 2,
    logger: new Logger("error"),
  });
  assert.deepEqual(engine.binding("hiddenIn")?.shape, ["N", L, H]);
  using ctx = engine.createContext();
  const r = rng(12);
  const index = Int32Array.of(3, 60);
  const hiddenIn = randomArray(2 * L * H, r, -0.5, 0.5);
  const cellIn = randomArray(2 * L * H, r, -1, 1);
  const out = await ctx.execute({ index, hiddenIn, cellIn });
  const w = drawWeights(5);
  for (let b = 0; b < 2; b++) {
    const s = L * H, at = b * s;
    const [next, h, c] = referenceStep(
      w,
      index[b],
      hiddenIn.subarray(at, at + s),
      cellIn.subarray(at, at + s),
    );
    assertClose(out.hiddenOut.subarray(at, at + s), h, { atol: 1e-5, rtol: 0 }, `h, item ${b}`);
    assertClose(out.cellOut.subarray(at, at + s), c, { atol: 1e-5, rtol: 0 }, `c, item ${b}`);
    assert.equal(out.next[b], next, `next, item ${b}`);
  }
  // A short generation loop runs and stays in the vocabulary.
  const loop = await ctx.executeLoop({ index, hiddenIn, cellIn }, {
    steps: 3,
    feedback: { next: "index", hiddenOut: "hiddenIn", cellOut: "cellIn" },
    collect: ["next"],
  });
  assert.equal(loop.next.length, 6);
  assert.deepEqual(Array.from(loop.next.subarray(0, 2)), Array.from(out.next));
  assert.ok(loop.next.every((i) => i >= 0 && i < V));
});
