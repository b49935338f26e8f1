/**
 * sampleCharRNN: a character-level LSTM that writes Shakespeare, built layer by layer from a
 * TensorFlow checkpoint read natively (no TensorFlow), then generating greedily on the device.
 *
 *   deno run -A examples/charrnn.ts [--prompt=TEXT] [--length=N] [--device=cpu|cuda|auto]
 *
 * The model (data/charrnn, MIT, crazydonkey200/tensorflow-char-rnn) is a MultiRNNCell of 2
 * BasicLSTMCell(128, forget_bias=0) over a one-hot input of 65 symbols, then logits =
 * h·softmax_w + softmax_b. The network, as the TensorRT sample builds it:
 *
 *   index int32 [N, 1] ─ Gather(Constant 65×65) → [N, 1, 65] ─ RNNv2 (LSTM, 2 layers, 128) ─┐
 *   hiddenIn, cellIn [N, 2, 128] ────────────────────────────────────────┘   hiddenOut, cellOut
 *   → Shuffle [N, 128] → MatrixMultiply(Constant softmax_w [128, 65]) → ElementWise sum
 *     (Constant softmax_b [1, 65]) → TopK(max, k = 1) → next int32 [N, 1]
 *
 * The Constant is the 65×65 identity: the checkpoint's embedding_size 0 means one-hot input.
 * The Shuffle (as in TensorRT 5's sample) drops the sequence axis of length 1, so the TopK index
 * has the input's dims [N, 1] and can be fed straight back into it: `generate` primes the state
 * with the prompt, then runs all n steps in one `executeLoop` call (next → index, hiddenOut →
 * hiddenIn, cellOut → cellIn), with no host round trip per character where the device allows.
 */
import {
  applyGates,
  buildEngine,
  type Checkpoint,
  type Engine,
  type HostArray,
  KilnError,
  Logger,
  N,
  Network,
  readCheckpoint,
  tfLstmCellGates,
} from "../mod.ts";
import { type Device, deviceFlag, intFlag, parseFlags, pathOf } from "./_common.ts";

/** The shipped checkpoint's path prefix and its vocabulary (char → index). */
export const CHECKPOINT = pathOf(new URL("../data/charrnn/model-85340", import.meta.url));
export const VOCAB_FILE = pathOf(new URL("../data/charrnn/vocab.json", import.meta.url));

/** The TensorFlow variable names, with `/` where sampleCharRNN's `.wts` names have `_`. */
export const TF_NAMES = {
  kernel: (layer: number) => `rnn/multi_rnn_cell/cell_${layer}/basic_lstm_cell/kernel`,
  bias: (layer: number) => `rnn/multi_rnn_cell/cell_${layer}/basic_lstm_cell/bias`,
  softmaxW: "softmax/softmax_w",
  softmaxB: "softmax/softmax_b",
};

/** What generation feeds back after each step: output binding → input binding. */
export const FEEDBACK = { next: "index", hiddenOut: "hiddenIn", cellOut: "cellIn" } as const;

export interface CharRnnOptions {
  /** The cells' forget_bias, which checkpoints do not store: 0 for the shipped model. */
  forgetBias?: number;
}

/** A char → index map, as vocab.json holds it. */
export type Vocab = Record<string, number>;

/** The CharRNN network from a checkpoint holding the LSTM cells and the softmax layer. */
export function buildCharRnn(checkpoint: Checkpoint, options: CharRnnOptions = {}): Network {
  const cells = [];
  for (let l = 0; checkpoint.has(TF_NAMES.kernel(l)); l++) {
    cells.push({
      kernel: checkpoint.float32(TF_NAMES.kernel(l)),
      bias: checkpoint.float32(TF_NAMES.bias(l)),
    });
  }
  if (cells.length === 0) {
    throw new KilnError(
      "INVALID_ARGUMENT",
      `the checkpoint has no "${TF_NAMES.kernel(0)}": not a MultiRNNCell of BasicLSTMCells`,
      { tensor: TF_NAMES.kernel(0) },
    );
  }
  const gates = tfLstmCellGates(cells, { forgetBias: options.forgetBias ?? 0 });
  const softmaxW = checkpoint.float32(TF_NAMES.softmaxW);
  const softmaxB = checkpoint.float32(TF_NAMES.softmaxB);
  const hidden = gates.hiddenSize, vocab = gates.inputSizes[0];
  const expect = (name: string, dims: number[], want: number[]) => {
    if (dims.join() !== want.join()) {
      throw new KilnError(
        "SHAPE_MISMATCH",
        `"${name}" is [${dims}]; [${want}] expected for ${vocab} one-hot inputs and hidden ${hidden}`,
        { tensor: name },
      );
    }
  };
  expect(TF_NAMES.softmaxW, softmaxW.dims, [hidden, vocab]);
  expect(TF_NAMES.softmaxB, softmaxB.dims, [vocab]);

  const net = new Network();
  const index = net.input("index", [N, 1], "int32");
  const hiddenIn = net.input("hiddenIn", [N, cells.length, hidden]);
  const cellIn = net.input("cellIn", [N, cells.length, hidden]);
  const oneHot = net.addConstant([], {
    name: "embedding",
    dims: [vocab, vocab],
    values: eye(vocab),
  });
  const rnn = net.addRNNv2(oneHot.output(0).gather(index), {
    name: "rnn",
    op: "lstm",
    layers: cells.length,
    hiddenSize: hidden,
    maxSeqLen: 1,
  });
  rnn.setHiddenState(hiddenIn).setCellState(cellIn);
  applyGates(rnn, gates);
  const w = net.addConstant([], {
    name: "softmax_w",
    dims: [hidden, vocab],
    values: softmaxW.values,
  });
  const b = net.addConstant([], { name: "softmax_b", dims: [1, vocab], values: softmaxB.values });
  const logits = rnn.output(0).reshape([0, -1]).matmul(w.output(0)).add(b.output(0));
  const pred = net.addTopK(logits, { name: "pred", op: "max", k: 1, axis: 1 });
  net.markOutput(pred.output(1), "next");
  net.markOutput(rnn.output(1), "hiddenOut");
  net.markOutput(rnn.output(2), "cellOut");
  return net;
}

/**
 * Greedy generation of `n` characters after `prompt` (returned without the prompt). All prompt
 * characters but the last are run one by one to prime the state; the loop then starts from the
 * last one, so its first step predicts the first new character.
 */
export async function generate(
  engine: Engine,
  vocab: Vocab,
  prompt: string,
  n: number,
): Promise<string> {
  if (!(Number.isInteger(n) && n >= 0)) {
    throw new KilnError("INVALID_ARGUMENT", `the length must be a non-negative integer; got ${n}`);
  }
  const symbols = symbolsOf(vocab);
  const ids = [...prompt].map((ch) => {
    const id = vocab[ch];
    if (id === undefined) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `the prompt's ${JSON.stringify(ch)} is not one of the model's ${symbols.length} symbols`,
      );
    }
    return id;
  });
  if (ids.length === 0) throw new KilnError("INVALID_ARGUMENT", "the prompt is empty");
  const state = engine.binding("hiddenIn");
  if (!state || state.shape.length !== 3) {
    throw new KilnError("INVALID_ARGUMENT", "the engine is not a CharRNN (no hiddenIn binding)");
  }
  const stateSize = (state.shape[1] as number) * (state.shape[2] as number);
  using ctx = engine.createContext();
  let hiddenIn: HostArray = new Float32Array(stateSize),
    cellIn: HostArray = new Float32Array(stateSize);
  for (const id of ids.slice(0, -1)) {
    const out = await ctx.execute({ index: Int32Array.of(id), hiddenIn, cellIn });
    [hiddenIn, cellIn] = [out.hiddenOut, out.cellOut];
  }
  if (n === 0) return "";
  const { next } = await ctx.executeLoop(
    { index: Int32Array.of(ids[ids.length - 1]), hiddenIn, cellIn },
    { steps: n, feedback: FEEDBACK, collect: ["next"] },
  );
  return Array.from(next, (i) => symbols[i]).join("");
}

/** Reads vocab.json: one-character keys to distinct indices 0..size−1. */
export async function readVocab(path = VOCAB_FILE): Promise<Vocab> {
  let vocab: unknown;
  try {
    vocab = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new KilnError("PARSE_ERROR", `${path}: ${(e as Error).message}`, {
      file: path,
      cause: e,
    });
  }
  try {
    symbolsOf(vocab as Vocab);
  } catch (e) {
    throw new KilnError("PARSE_ERROR", `${path}: ${(e as Error).message}`, {
      file: path,
      cause: e,
    });
  }
  return vocab as Vocab;
}

/** index → char, checking that the map is one-to-one onto 0..size−1. */
function symbolsOf(vocab: Vocab): string[] {
  if (vocab === null || typeof vocab !== "object" || Array.isArray(vocab)) {
    throw new KilnError("INVALID_ARGUMENT", "the vocabulary must be an object of char → index");
  }
  const entries = Object.entries(vocab);
  const symbols = new Array<string>(entries.length);
  for (const [ch, id] of entries) {
    if ([...ch].length !== 1 || !Number.isInteger(id) || id < 0 || id >= entries.length) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `vocabulary entry ${
          JSON.stringify(ch)
        }: ${id} is not a single character mapped to an index in [0, ${entries.length})`,
      );
    }
    if (symbols[id] !== undefined) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `vocabulary index ${id} is used by both ${JSON.stringify(symbols[id])} and ${
          JSON.stringify(ch)
        }`,
      );
    }
    symbols[id] = ch;
  }
  return symbols;
}

/** The n×n identity, row-major. */
function eye(n: number): Float32Array {
  const m = new Float32Array(n * n);
  for (let i = 0; i < n; i++) m[i * n + i] = 1;
  return m;
}

/** `\n`, `\t` and `\\` in a command-line flag as the characters they name. */
export function unescapeFlag(text: string): string {
  return text.replace(/\\([nt\\])/g, (_, c) => (c === "n" ? "\n" : c === "t" ? "\t" : "\\"));
}

/** Builds the engine; with "auto", a GPU backend without a kernel for a layer falls back to the CPU. */
async function buildOn(network: Network, device: Device, logger: Logger): Promise<Engine> {
  try {
    return await buildEngine(network, { device, logger });
  } catch (e) {
    if (device !== "auto" || !(e instanceof KilnError) || e.code !== "UNSUPPORTED") throw e;
    logger.warning(`${e.message}; running on the CPU`);
    return await buildEngine(network, { device: "cpu", logger });
  }
}

const USAGE =
  "usage: deno run -A examples/charrnn.ts [--prompt=TEXT] [--length=N] [--device=cpu|cuda|auto]";

/** Runs the sample: prints the prompt followed by the generated text. */
export async function main(args: string[]): Promise<number> {
  try {
    const f = parseFlags(args, { prompt: "ROMEO:\\n", length: "300", device: "" });
    const prompt = unescapeFlag(f.prompt);
    const length = intFlag("length", f.length);
    const logger = new Logger("warning");
    const vocab = await readVocab();
    using engine = await buildOn(
      buildCharRnn(await readCheckpoint(CHECKPOINT)),
      deviceFlag(f.device),
      logger,
    );
    const t0 = performance.now();
    const text = await generate(engine, vocab, prompt, length);
    const ms = performance.now() - t0;
    console.log(prompt + text);
    console.error(
      `\n[${length} characters in ${ms.toFixed(1)} ms (${(1000 * ms / length).toFixed(1)} µs ` +
        `per character) on ${engine.device.name}]`,
    );
    return 0;
  } catch (e) {
    if (!(e instanceof KilnError)) throw e;
    console.error(`error: ${e.message}\n${USAGE}`);
    return 2;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
