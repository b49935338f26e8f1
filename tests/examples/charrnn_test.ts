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
import {
  best,
  HIDDEN,
  loadReference,
  referenceGreedy,
  ReferenceLstm,
} from "../_charrnn_reference.ts";

const { vocab, symbols, weights } = await loadReference();

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
