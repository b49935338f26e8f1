/**
 * An independent greedy CharRNN decoder for the GPU suite (the one of
 * tests/examples/charrnn_test.ts): the raw float32 tensors read straight from the checkpoint's
 * .data file at the offsets listed in ../shared/data/SOURCES.md (no Kiln code at all), and the
 * textbook BasicLSTMCell in float64:
 *
 *   [i, j, f, o] = [x, h]·kernel + bias      c' = c·σ(f + forget_bias) + σ(i)·tanh(j)
 *   h' = tanh(c')·σ(o)                       logits = h'_top·softmax_w + softmax_b
 *
 * with x one-hot over the 65 symbols and forget_bias 0 (the model's).
 */
import assert from "node:assert/strict";

export const DATA_FILE = new URL(
  "../data/charrnn/model-85340.data-00000-of-00001",
  import.meta.url,
);
export const VOCAB_FILE = new URL("../data/charrnn/vocab.json", import.meta.url);
export const HIDDEN = 128, VOCAB = 65, GATES = 4 * HIDDEN;

/** Byte offsets and shapes in the .data shard (../shared/data/SOURCES.md, "TensorFlow char-rnn"). */
const LAYOUT = {
  bias0: { offset: 12, dims: [GATES] },
  kernel0: { offset: 6156, dims: [VOCAB + HIDDEN, GATES] },
  bias1: { offset: 1191948, dims: [GATES] },
  kernel1: { offset: 1198092, dims: [2 * HIDDEN, GATES] },
  softmaxB: { offset: 2770956, dims: [VOCAB] },
  softmaxW: { offset: 2771736, dims: [HIDDEN, VOCAB] },
};

export type Weights = Record<keyof typeof LAYOUT, Float64Array>;

/** Little-endian float32 values at each listed offset, widened to float64. */
export function readWeights(bytes: Uint8Array): Weights {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = {} as Weights;
  for (const [name, { offset, dims }] of Object.entries(LAYOUT)) {
    const count = dims.reduce((a, b) => a * b, 1);
    assert.ok(offset + 4 * count <= bytes.length, `${name} lies past the end of the .data file`);
    out[name as keyof Weights] = Float64Array.from(
      { length: count },
      (_, i) => view.getFloat32(offset + 4 * i, true),
    );
  }
  return out;
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/** The 2-layer BasicLSTMCell network in float64, one batch item. */
export class ReferenceLstm {
  readonly h = [new Float64Array(HIDDEN), new Float64Array(HIDDEN)];
  readonly c = [new Float64Array(HIDDEN), new Float64Array(HIDDEN)];
  constructor(readonly w: Weights) {}

  /** Feeds symbol `id`; returns the logits of the next symbol. */
  step(id: number): Float64Array {
    let x = new Float64Array(VOCAB);
    x[id] = 1;
    for (let l = 0; l < 2; l++) {
      const kernel = l === 0 ? this.w.kernel0 : this.w.kernel1;
      const bias = l === 0 ? this.w.bias0 : this.w.bias1;
      const input = [...x, ...this.h[l]]; // [x, h]
      const g = Float64Array.from(bias);
      for (let r = 0; r < input.length; r++) {
        for (let k = 0; k < GATES; k++) g[k] += input[r] * kernel[r * GATES + k];
      }
      const h = new Float64Array(HIDDEN);
      for (let u = 0; u < HIDDEN; u++) {
        const i = g[u], j = g[HIDDEN + u], f = g[2 * HIDDEN + u], o = g[3 * HIDDEN + u];
        const forgetBias = 0;
        this.c[l][u] = this.c[l][u] * sigmoid(f + forgetBias) + sigmoid(i) * Math.tanh(j);
        h[u] = Math.tanh(this.c[l][u]) * sigmoid(o);
      }
      this.h[l] = h;
      x = h;
    }
    const logits = Float64Array.from(this.w.softmaxB);
    for (let u = 0; u < HIDDEN; u++) {
      for (let v = 0; v < VOCAB; v++) logits[v] += x[u] * this.w.softmaxW[u * VOCAB + v];
    }
    return logits;
  }
}

/** The best index (the lower one on a tie) and its lead over the runner-up. */
export function best(logits: Float64Array): { index: number; margin: number } {
  let index = 0;
  for (let v = 1; v < logits.length; v++) if (logits[v] > logits[index]) index = v;
  let second = -Infinity;
  logits.forEach((x, v) => v !== index && x > second && (second = x));
  return { index, margin: logits[index] - second };
}

/** Greedy decoding after priming with every prompt symbol; each new symbol's top-2 margin. */
export function referenceGreedy(w: Weights, prompt: number[], n: number) {
  const lstm = new ReferenceLstm(w);
  let logits: Float64Array = new Float64Array(0);
  for (const id of prompt) logits = lstm.step(id);
  const ids: number[] = [], margins: number[] = [];
  for (let s = 0; s < n; s++) {
    const b = best(logits);
    ids.push(b.index);
    margins.push(b.margin);
    if (s + 1 < n) logits = lstm.step(b.index);
  }
  return { ids, margins };
}

/** The vocabulary (char → index), its symbols (index → char) and the checkpoint's weights. */
export async function loadReference() {
  const vocab: Record<string, number> = JSON.parse(await Deno.readTextFile(VOCAB_FILE));
  const symbols: string[] = [];
  for (const [ch, id] of Object.entries(vocab)) symbols[id] = ch;
  const weights = readWeights(await Deno.readFile(DATA_FILE));
  return { vocab, symbols, weights };
}
