/**
 * examples/charrnn.ts against an independent greedy decoder written here: the raw float32
 * tensors read straight from the checkpoint's .data file at the offsets listed in
 * ../shared/data/SOURCES.md (no Kiln code at all), and the textbook BasicLSTMCell in float64:
 *
 *   [i, j, f, o] = [x, h]·kernel + bias      c' = c·σ(f + forget_bias) + σ(i)·tanh(j)
 *   h' = tanh(c')·σ(o)                       logits = h'_top·softmax_w + softmax_b
 *
 * with x one-hot over the 65 symbols and forget_bias 0 (the model's).
 */
import assert from "node:assert/strict";
import { buildEngine } from "../../builder/build.ts";
import { KilnError } from "../../errors.ts";
import { readCheckpoint } from "../../parsers/tf/checkpoint.ts";
import { Logger } from "../../runtime/logger.ts";
import {
  buildCharRnn,
  CHECKPOINT,
  FEEDBACK,
  generate,
  main,
  readVocab,
  unescapeFlag,
} from "../../examples/charrnn.ts";
import { assertClose } from "../_util.ts";

const DATA_FILE = new URL("../../data/charrnn/model-85340.data-00000-of-00001", import.meta.url);
const VOCAB_FILE = new URL("../../data/charrnn/vocab.json", import.meta.url);
const HIDDEN = 128, VOCAB = 65, GATES = 4 * HIDDEN;

/** Byte offsets and shapes in the .data shard (../shared/data/SOURCES.md, "TensorFlow char-rnn"). */
const LAYOUT = {
  bias0: { offset: 12, dims: [GATES] },
  kernel0: { offset: 6156, dims: [VOCAB + HIDDEN, GATES] },
  bias1: { offset: 1191948, dims: [GATES] },
  kernel1: { offset: 1198092, dims: [2 * HIDDEN, GATES] },
  softmaxB: { offset: 2770956, dims: [VOCAB] },
  softmaxW: { offset: 2771736, dims: [HIDDEN, VOCAB] },
};

type Weights = Record<keyof typeof LAYOUT, Float64Array>;

/** Little-endian float32 values at each listed offset, widened to float64. */
function readWeights(bytes: Uint8Array): Weights {
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
class ReferenceLstm {
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
function best(logits: Float64Array): { index: number; margin: number } {
  let index = 0;
  for (let v = 1; v < logits.length; v++) if (logits[v] > logits[index]) index = v;
  let second = -Infinity;
  logits.forEach((x, v) => v !== index && x > second && (second = x));
  return { index, margin: logits[index] - second };
}

/** Greedy decoding after priming with every prompt symbol; each new symbol's top-2 margin. */
function referenceGreedy(w: Weights, prompt: number[], n: number) {
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

const vocab: Record<string, number> = JSON.parse(await Deno.readTextFile(VOCAB_FILE));
const symbols: string[] = [];
for (const [ch, id] of Object.entries(vocab)) symbols[id] = ch;
const weights = readWeights(await Deno.readFile(DATA_FILE));

async function cpuEngine(maxBatchSize = 1) {
  const net = buildCharRnn(await readCheckpoint(CHECKPOINT));
  return await buildEngine(net, { device: "cpu", maxBatchSize, logger: new Logger("error") });
}

Deno.test("charrnn: Kiln's 300 greedy characters after ROMEO:\\n equal a float64 textbook LSTM's", async () => {
  const prompt = "ROMEO:\n";
  using engine = await cpuEngine();
  const kiln = await generate(engine, vocab, prompt, 300);
  const ref = referenceGreedy(weights, [...prompt].map((c) => vocab[c]), 300);
  const expected = ref.ids.map((i) => symbols[i]).join("");
  assert.equal(kiln.length, 300);
  const at = [...kiln].findIndex((c, i) => c !== expected[i]);
  assert.equal(
    kiln,
    expected,
    at < 0 ? "" : `first difference at character ${at}: Kiln ${JSON.stringify(kiln[at])}, ` +
      `reference ${JSON.stringify(expected[at])} (the reference's top-2 margin there is ` +
      `${ref.margins[at]})`,
  );
  // The known-good start (SOURCES.md, an independent numpy run).
  assert.ok(
    kiln.startsWith("I will be so done.\n\nBENVOLIO:\nWhat is the world to the seat of the world,"),
    JSON.stringify(kiln.slice(0, 80)),
  );
  // How far from a tie greedy decoding ran: a margin near float32 rounding would make the
  // equality above luck rather than evidence.
  const margin = Math.min(...ref.margins);
  assert.ok(margin > 1e-4, `smallest top-2 margin ${margin}`);
});

Deno.test("charrnn: a batch of 3 prompts through executeLoop follows the reference (states too)", async () => {
  using engine = await cpuEngine(4);
  using ctx = engine.createContext();
  const starts = ["K", "J", "a"].map((c) => vocab[c]);
  const steps = 40, state = 2 * HIDDEN;
  const got = await ctx.executeLoop(
    {
      index: Int32Array.from(starts),
      hiddenIn: new Float32Array(3 * state),
      cellIn: new Float32Array(3 * state),
    },
    { steps, feedback: FEEDBACK, collect: ["next", "hiddenOut", "cellOut"] },
  );
  assert.equal(got.next.length, steps * 3);
  starts.forEach((start, b) => {
    const lstm = new ReferenceLstm(weights);
    let id = start;
    for (let s = 0; s < steps; s++) {
      const next = best(lstm.step(id)).index;
      assert.equal(got.next[s * 3 + b], next, `item ${b}, step ${s}`);
      // States [N, layers, H] at step s: item b's two layers.
      const at = (s * 3 + b) * state;
      assertClose(got.hiddenOut.subarray(at, at + state), [...lstm.h[0], ...lstm.h[1]], {
        atol: 2e-5,
        rtol: 0,
      }, `hidden, item ${b}, step ${s}`);
      assertClose(got.cellOut.subarray(at, at + state), [...lstm.c[0], ...lstm.c[1]], {
        atol: 3e-5,
        rtol: 0,
      }, `cell, item ${b}, step ${s}`);
      id = next;
    }
  });
});

Deno.test("charrnn: generate refuses an unknown character, an empty prompt, a bad length", async () => {
  using engine = await cpuEngine();
  const refused = (pattern: RegExp) => (e: unknown) =>
    e instanceof KilnError && e.code === "INVALID_ARGUMENT" && pattern.test(e.message);
  await assert.rejects(
    generate(engine, vocab, "ROMEO#", 5),
    refused(/"#" is not one of the model's 65/),
  );
  await assert.rejects(generate(engine, vocab, "", 5), refused(/the prompt is empty/));
  await assert.rejects(generate(engine, vocab, "A", -1), refused(/non-negative integer/));
  assert.equal(await generate(engine, vocab, "A", 0), "");
});

Deno.test("charrnn: readVocab reads the shipped map and names a broken file", async () => {
  assert.deepEqual(await readVocab(), vocab);
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string, RegExp][] = [
      ["{", /JSON/],
      ['{"a": 0, "b": 0}', /index 0 is used by both "a" and "b"/],
      ['{"ab": 0}', /"ab": 0 is not a single character/],
      ['{"a": 1}', /"a": 1 is not a single character mapped to an index in \[0, 1\)/],
    ];
    for (const [text, pattern] of cases) {
      const path = `${dir}/vocab.json`;
      await Deno.writeTextFile(path, text);
      await assert.rejects(readVocab(path), (e: unknown) => {
        assert.ok(e instanceof KilnError && e.code === "PARSE_ERROR", String(e));
        assert.match(e.message, pattern);
        assert.equal(e.file, path);
        return true;
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("charrnn: \\n, \\t and \\\\ in a flag are the characters they name", () => {
  assert.equal(unescapeFlag("ROMEO:\\n"), "ROMEO:\n");
  assert.equal(unescapeFlag("a\\tb\\\\n"), "a\tb\\n");
});

Deno.test("charrnn main prints the prompt and the generated text; a bad flag is exit code 2", async () => {
  const printed: string[] = [], errors: string[] = [];
  const { log, error } = console;
  console.log = (s: string) => printed.push(s);
  console.error = (s: string) => errors.push(s);
  try {
    assert.equal(await main(["--prompt=ROMEO:\\n", "--length=18", "--device=cpu"]), 0);
    assert.deepEqual(printed, ["ROMEO:\nI will be so done."]);
    assert.equal(await main(["--length=ten"]), 2);
    assert.match(errors.join("\n"), /--length must be a positive integer; got "ten"/);
  } finally {
    Object.assign(console, { log, error });
  }
});
