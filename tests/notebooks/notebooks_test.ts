/**
 * Every notebook in notebooks/, executed top to bottom, headless, by Debian's Jupyter
 * (`jupyter nbconvert --to notebook --execute`) on the Deno kernel of the very deno binary that
 * runs this test; then the executed notebook's outputs are checked: no errors, the MIME types
 * each one must show (plotly JSON, SVG drawings) and its key values (the ten predictions, the
 * CharRNN text against a float64 LSTM written here, the gate-layout errors). Notebooks that read
 * NVIDIA's sample data from ../shared/data also run once without it, where their cells must skip
 * that work with a note and no error. And the committed notebooks carry no outputs.
 *
 * Needs `jupyter nbconvert` (Debian's jupyter-nbconvert; `bash scripts/test.sh` installs it when
 * it can) and installs a kernelspec "kiln-deno" (`deno jupyter --install`) for this deno binary.
 */
import assert from "node:assert/strict";
import { readCheckpoint } from "../../parsers/tf/checkpoint.ts";

const NOTEBOOKS = new URL("../../notebooks/", import.meta.url).pathname;
const SHARED = new URL("../../../shared/data/", import.meta.url).pathname;
const KERNEL = "kiln-deno";
/** Each notebook must run top to bottom in under two minutes on a CPU. */
const MAX_SECONDS = 120;

const hasShared = [
  "wts/sampleMLP.wts2",
  "caffe/mnist/mnist.caffemodel",
  "images/mnist-pgm/9.pgm",
].every((f) => {
  try {
    return Deno.statSync(SHARED + f).isFile;
  } catch {
    return false;
  }
});

/** notebooks/int8.ipynb also needs the MNIST test set. */
const hasInt8Data = hasShared && [
  "mnist-idx/t10k-images-idx3-ubyte.gz",
  "mnist-idx/t10k-labels-idx1-ubyte.gz",
].every((f) => {
  try {
    return Deno.statSync(SHARED + f).isFile;
  } catch {
    return false;
  }
});

const notebookFiles = [...Deno.readDirSync(NOTEBOOKS)]
  .filter((e) => e.isFile && e.name.endsWith(".ipynb"))
  .map((e) => e.name)
  .sort();

// ---------------------------------------------------------------------------------------------
// Running notebooks

interface Output {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, unknown>;
  ename?: string;
  evalue?: string;
  traceback?: string[];
}

interface Cell {
  cell_type: string;
  source: string | string[];
  outputs?: Output[];
  execution_count?: number | null;
}

interface Notebook {
  cells: Cell[];
  metadata: { kernelspec?: { name?: string } };
  nbformat: number;
}

const text = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join("") : v ?? "");

async function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  return {
    ok: out.success,
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** Checks for Jupyter and installs the kernelspec for this deno binary, once. */
const ready = (async () => {
  const version = await run("jupyter", ["nbconvert", "--version"]).catch(() => undefined);
  if (!version?.ok) {
    throw new Error(
      "Jupyter's nbconvert is not installed, so the notebooks cannot be executed. " +
        "`bash scripts/test.sh` installs Debian's jupyter-nbconvert when run as root or with " +
        "passwordless sudo; otherwise: apt-get install jupyter-nbconvert jupyter-client" +
        (version ? `\n${version.stderr}` : ""),
    );
  }
  const deno = await Deno.realPath(Deno.execPath());
  const specs = await run("jupyter", ["kernelspec", "list", "--json"]);
  const spec = specs.ok
    ? JSON.parse(specs.stdout).kernelspecs?.[KERNEL]?.spec as { argv?: string[] } | undefined
    : undefined;
  const current = spec?.argv?.[0] && await Deno.realPath(spec.argv[0]).catch(() => "");
  if (current !== deno) {
    const install = await run(Deno.execPath(), [
      "jupyter",
      "--install",
      "--force",
      `--name=${KERNEL}`,
      "--display=Deno (Kiln tests)",
    ]);
    if (!install.ok) {
      throw new Error(`deno jupyter --install failed (${install.code}):\n${install.stderr}`);
    }
  }
})();
ready.catch(() => {}); // reported by each test that awaits it

interface Executed {
  nb: Notebook;
  seconds: number;
  /** Everything the cells printed to stdout, in order. */
  stdout: string;
  /** Every displayed or returned MIME bundle, in order. */
  bundles: Record<string, unknown>[];
}

/**
 * Deno's kernel can report a cell idle before the cell's console output reaches nbconvert, which
 * then drops it (the race of denoland/deno#20337's discussion, seen here under load): a code cell
 * that logs yet came back with no output at all. Such a run is executed once more, and says so.
 */
function lostOutput(nb: Notebook): number[] {
  return nb.cells.flatMap((c, i) =>
    c.cell_type === "code" && /console\.log\(/.test(text(c.source)) && !c.outputs?.length ? [i] : []
  );
}

async function execute(name: string, env: Record<string, string> = {}): Promise<Executed> {
  const first = await executeOnce(name, env);
  const lost = lostOutput(first.nb);
  if (!lost.length) return first;
  console.log(
    `${name}: cells ${lost.join(", ")} lost their output to the kernel race; running again`,
  );
  return await executeOnce(name, env);
}

async function executeOnce(name: string, env: Record<string, string>): Promise<Executed> {
  await ready;
  const dir = await Deno.makeTempDir({ prefix: "kiln-notebook-" });
  try {
    const started = performance.now();
    const r = await run("jupyter", [
      "nbconvert",
      "--to=notebook",
      "--execute",
      "--allow-errors", // errors are outputs, reported below with their cell
      `--ExecutePreprocessor.kernel_name=${KERNEL}`,
      `--ExecutePreprocessor.timeout=${MAX_SECONDS}`,
      `--output-dir=${dir}`,
      `--output=${name}`,
      `${NOTEBOOKS}${name}`,
    ], env);
    const seconds = (performance.now() - started) / 1000;
    if (!r.ok) {
      throw new Error(`nbconvert failed on ${name} (${r.code}):\n${r.stderr.slice(-3000)}`);
    }
    const nb = JSON.parse(await Deno.readTextFile(`${dir}/${name}`)) as Notebook;
    const outputs = nb.cells.flatMap((c) => c.outputs ?? []);
    return {
      nb,
      seconds,
      stdout: outputs.filter((o) => o.output_type === "stream" && o.name === "stdout")
        .map((o) => text(o.text)).join(""),
      bundles: outputs.filter((o) => o.data).map((o) => o.data!),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// ---------------------------------------------------------------------------------------------
// What every executed notebook must satisfy

function assertRanCleanly(name: string, x: Executed): void {
  const problems = x.nb.cells.flatMap((c, i) =>
    (c.outputs ?? []).flatMap((o) =>
      o.output_type === "error"
        ? [`cell ${i}: ${o.ename}: ${o.evalue}\n  ${(o.traceback ?? []).slice(0, 6).join("\n  ")}`]
        : o.output_type === "stream" && o.name === "stderr"
        ? [`cell ${i} wrote to stderr: ${text(o.text).slice(0, 500)}`]
        : []
    )
  );
  assert.deepEqual(problems, [], `${name}:\n${problems.join("\n")}`);
  const unrun = x.nb.cells.filter((c) => c.cell_type === "code" && c.execution_count == null);
  assert.equal(unrun.length, 0, `${name}: ${unrun.length} code cells did not run`);
  assert.ok(x.seconds < MAX_SECONDS, `${name} took ${x.seconds.toFixed(1)} s`);
  for (const b of x.bundles) {
    const plain = b["text/plain"] as string | string[] | undefined;
    assert.ok(text(plain).length > 0, `${name}: every output has a text/plain form`);
    const fig = b["application/vnd.plotly.v1+json"] as { data?: unknown[]; layout?: object };
    if (fig) {
      assert.ok(Array.isArray(fig.data) && fig.data.length > 0 && fig.layout, "a plotly figure");
      assert.match(text(b["text/html"] as string[]), /Plotly\.newPlot/, "with its HTML fallback");
    }
  }
}

type Figure = { data: Record<string, unknown>[]; layout: { title?: { text?: string } } };
const plots = (x: Executed) =>
  x.bundles.map((b) => b["application/vnd.plotly.v1+json"] as Figure).filter(Boolean);
/** The SVG drawings, with character references decoded (Graphviz writes "-" as "&#45;"). */
const svgs = (x: Executed) =>
  x.bundles.map((b) => b["image/svg+xml"]).filter(Boolean).map((s) =>
    text(s as string[])
      .replace(/&#(\d+);/g, (_, n) => String.fromCharCode(Number(n)))
      .replace(/&(lt|gt|quot|amp);/g, (_, e) =>
        ({ lt: "<", gt: ">", quot: '"', amp: "&" })[e as "lt"])
  );

const DIGITS = "[0,1,2,3,4,5,6,7,8,9]";
const summary: string[] = [];

// ---------------------------------------------------------------------------------------------
// CharRNN: the text must be the greedy output of the checkpoint's LSTM, computed here in float64.

/** Greedy text from TF's 2-layer BasicLSTMCell char-RNN (forget_bias 0), straight from the formula. */
async function referenceCharRnn(prompt: string, length: number): Promise<string> {
  const dir = new URL("../../data/charrnn/", import.meta.url).pathname;
  const vocab: Record<string, number> = JSON.parse(await Deno.readTextFile(`${dir}vocab.json`));
  const chars: string[] = [];
  for (const [c, i] of Object.entries(vocab)) chars[i] = c;
  const ckpt = await readCheckpoint(`${dir}model-85340`);
  const V = chars.length, H = 128;
  const cell = (l: number, what: string) =>
    ckpt.float32(`rnn/multi_rnn_cell/cell_${l}/basic_lstm_cell/${what}`).values;
  const kernel = [cell(0, "kernel"), cell(1, "kernel")], bias = [cell(0, "bias"), cell(1, "bias")];
  const w = ckpt.float32("softmax/softmax_w").values, b = ckpt.float32("softmax/softmax_b").values;
  const h = [new Float64Array(H), new Float64Array(H)],
    c = [new Float64Array(H), new Float64Array(H)];
  const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
  const step = (id: number): number => {
    let x: ArrayLike<number> = Float64Array.from({ length: V }, (_, i) => (i === id ? 1 : 0));
    for (let l = 0; l < 2; l++) {
      // [x, h] · kernel [I + H, 4H] + bias; column blocks i, j (candidate), f, o.
      const xh = [...Array.from(x), ...h[l]];
      const z = new Float64Array(4 * H);
      for (let col = 0; col < 4 * H; col++) {
        let s = bias[l][col];
        for (let r = 0; r < xh.length; r++) s += xh[r] * kernel[l][r * 4 * H + col];
        z[col] = s;
      }
      for (let k = 0; k < H; k++) {
        c[l][k] = sigmoid(z[2 * H + k]) * c[l][k] + sigmoid(z[k]) * Math.tanh(z[H + k]);
        h[l][k] = sigmoid(z[3 * H + k]) * Math.tanh(c[l][k]);
      }
      x = h[l];
    }
    let best = 0, bestLogit = -Infinity;
    for (let v = 0; v < V; v++) {
      let s = b[v];
      for (let k = 0; k < H; k++) s += x[k] * w[k * V + v];
      if (s > bestLogit) [best, bestLogit] = [v, s];
    }
    return best;
  };
  let next = 0;
  for (const ch of prompt) next = step(vocab[ch]);
  let out = "";
  for (let i = 0; i < length; i++) {
    out += chars[next];
    if (i < length - 1) next = step(next);
  }
  return out;
}

Deno.test("notebooks/charrnn.ipynb: checkpoint read, network drawn, text generated as a float64 LSTM does, profile plotted", async () => {
  const x = await execute("charrnn.ipynb");
  assertRanCleanly("charrnn", x);
  assert.match(x.stdout, /rnn\/multi_rnn_cell\/cell_0\/basic_lstm_cell\/kernel.*\[193, 512\]/);
  assert.match(x.stdout, /layer 1 forget: W \[128, 128\] {2}R \[128, 128\]/);
  const m = /── generated from ("[^"\n]*") \((\d+) characters, greedy\) ──\n([\s\S]*?)\n──\n/.exec(
    x.stdout,
  );
  assert.ok(m, `the generated text is printed:\n${x.stdout.slice(-1500)}`);
  const prompt = JSON.parse(m[1]) as string, length = Number(m[2]);
  // Greedy decoding is exact here: over these steps the top two logits of the float64 model
  // are never closer than 1.9e-3, far above float32 rounding.
  assert.equal(m[3], prompt + await referenceCharRnn(prompt, length));
  const drawing = svgs(x).find((s) => s.includes("RNNv2"));
  assert.ok(drawing?.includes("lstm") && drawing.includes("TopK") && drawing.includes("Gather"));
  const profile = plots(x).find((f) => /CharRNN, one step/.test(f.layout.title?.text ?? ""));
  assert.ok((profile?.data[0].y as string[]).includes("lstm"), "the profile has the LSTM's bar");
  summary.push(`charrnn.ipynb: ${x.seconds.toFixed(1)} s, "${prompt}" + ${length} characters`);
});

Deno.test(
  "notebooks/mlp.ipynb: sampleMLP from its .wts2 classifies the ten digits, shown as a heatmap grid, profiled",
  {
    ignore: !hasShared,
  },
  async () => {
    const x = await execute("mlp.ipynb");
    assertRanCleanly("mlp", x);
    assert.ok(x.stdout.includes(`predictions: ${DIGITS}`), x.stdout);
    assert.ok(x.stdout.includes("10/10 correct"));
    assert.ok(svgs(x).some((s) => s.includes("hidden0") && s.includes("FullyConnected")));
    const [grid, profile] = plots(x);
    assert.equal(grid.data.length, 10, "ten digit heatmaps");
    assert.ok(grid.data.every((t) => t.type === "heatmap" && (t.z as number[][]).length === 28));
    // Each caption: "<file> → <prediction> (<score>)".
    const captions = (grid.layout as { annotations: { text: string }[] }).annotations
      .map((a) => /^(\d)\.pgm → (\d) \(/.exec(a.text)?.slice(1));
    assert.deepEqual(captions, Array.from({ length: 10 }, (_, d) => [`${d}`, `${d}`]));
    assert.equal(
      (profile.data[0].y as string[]).length,
      1,
      "one bar: fuseMlp runs the three FullyConnected+sigmoid layers as one FusedMlp layer",
    );
    summary.push(`mlp.ipynb: ${x.seconds.toFixed(1)} s, predictions ${DIGITS}`);
  },
);

Deno.test(
  "notebooks/mnist.ipynb: Caffe and ONNX imports drawn, engine saved and reloaded identically, CPU (and GPU) profiles",
  {
    ignore: !hasShared,
  },
  async () => {
    const x = await execute("mnist.ipynb");
    assertRanCleanly("mnist", x);
    for (const line of [`Caffe predictions: ${DIGITS}`, `ONNX predictions: ${DIGITS}`]) {
      assert.ok(x.stdout.includes(line), `${line}\n${x.stdout}`);
    }
    assert.ok(x.stdout.includes("identical after reload: true"));
    const drawings = svgs(x);
    assert.ok(drawings.some((s) => s.includes("sampleMNIST from Caffe") && s.includes("conv1")));
    assert.ok(drawings.some((s) => s.includes("mnist-8 from ONNX") && s.includes("Convolution")));
    assert.ok(drawings.some((s) => s.includes("after the builder's passes")));
    const comparison = plots(x).find((f) => /by device/.test(f.layout.title?.text ?? ""));
    assert.ok(comparison, "the comparison figure");
    const gpu = /GPU engine: /.test(x.stdout);
    assert.ok(gpu || /note: no GPU here/.test(x.stdout), "the GPU cell ran or said why not");
    assert.equal(comparison.data.length, gpu ? 2 : 1, "one group of bars per device");
    summary.push(`mnist.ipynb: ${x.seconds.toFixed(1)} s, ${gpu ? "CPU and GPU" : "CPU (no GPU)"}`);
  },
);

Deno.test(
  "notebooks/int8.ipynb: LeNet calibrated (table of 10 scales), histograms and KL curves of conv1 and ip1, cache reused and refused when a weight changes, INT8 within 1 point of FP32",
  { ignore: !hasInt8Data },
  async () => {
    const x = await execute("int8.ipynb");
    assertRanCleanly("int8", x);
    assert.match(x.stdout, /calibrated 10 tensors \(entropy2\) over 10 batches of 100/);
    for (
      const t of [
        "data",
        "scale",
        "conv1",
        "pool1",
        "conv2",
        "pool2",
        "ip1@ip1",
        "ip1",
        "ip2",
        "prob",
      ]
    ) {
      assert.ok(x.stdout.includes(`"${t}"`), `the scales table lists ${t}`);
    }
    assert.match(
      x.stdout,
      /^KILN-[\d.]+-EntropyCalibration2\nkiln-key structure=\w+ weights=\w+ algorithm=entropy2 data=\w+$/m,
    );
    assert.ok(x.stdout.includes("second calibration from cache: true"));
    assert.ok(x.stdout.includes("one weight changed: from cache false, rejected because weights"));
    assert.match(
      x.stdout,
      /calibration cache .* matches: 10 scales applied/,
      "the INT8 build used the cache",
    );
    assert.match(x.stdout, /precision: conv1: INT8/);
    const titles = plots(x).map((f) => f.layout.title?.text ?? "");
    for (const t of ["conv1", "ip1"]) {
      assert.ok(titles.includes(`|${t}| over the calibration set`), `${t}'s histogram`);
      assert.ok(
        titles.includes(`KL divergence of ${t}'s INT8 quantization by threshold`),
        `${t}'s KL curve`,
      );
    }
    const hist = plots(x).find((f) => f.layout.title?.text === "|conv1| over the calibration set")!;
    assert.equal((hist.layout as { yaxis: { type: string } }).yaxis.type, "log");
    assert.equal((hist.layout as { shapes: unknown[] }).shapes.length, 1, "the threshold line");
    const acc = (p: string) =>
      Number(new RegExp(`${p} top-1: ([\\d.]+)% on (\\d+)`).exec(x.stdout)?.[1]);
    const fp32 = acc("FP32"), int8 = acc("INT8");
    assert.ok(fp32 > 97, `FP32 top-1 ${fp32}%`);
    assert.ok(Math.abs(int8 - fp32) <= 1, `INT8 ${int8}% vs FP32 ${fp32}%`);
    summary.push(`int8.ipynb: ${x.seconds.toFixed(1)} s, FP32 ${fp32}% INT8 ${int8}%`);
  },
);

Deno.test("notebooks/weights.ipynb: checkpoint → .wts/.wts2 bit-identical; PyTorch, Keras and ONNX LSTMs → RNNv2 match their references", async () => {
  const x = await execute("weights.ipynb");
  assertRanCleanly("weights", x);
  assert.equal(x.stdout.match(/read back bit-identical: true/g)?.length, 2, x.stdout);
  const errors = [...x.stdout.matchAll(/^(.+?) +→ RNNv2: max \|Kiln − reference\| = (\S+) /gm)];
  assert.deepEqual(errors.map((e) => e[1]), ["PyTorch nn.LSTM", "Keras LSTM", "ONNX LSTM"]);
  for (const e of errors) assert.ok(Number(e[2]) < 1e-5, `${e[1]}: ${e[2]}`);
  assert.ok(svgs(x).some((s) => s.includes("RNNv2")));
  summary.push(
    `weights.ipynb: ${x.seconds.toFixed(1)} s, gate errors ${errors.map((e) => e[2]).join(", ")}`,
  );
});

Deno.test("notebooks without ../shared/data: cells needing it print a note and skip, with no error", async () => {
  const env = { KILN_SHARED_DATA: "/nonexistent/kiln-shared-data" };
  const mlp = await execute("mlp.ipynb", env);
  assertRanCleanly("mlp (no sample data)", mlp);
  assert.match(
    mlp.stdout,
    /note: not found: \/nonexistent\/kiln-shared-data\/wts\/sampleMLP\.wts2/,
  );
  assert.equal(plots(mlp).length, 0);

  const mnist = await execute("mnist.ipynb", env);
  assertRanCleanly("mnist (no sample data)", mnist);
  assert.match(mnist.stdout, /note: not found: .*mnist\.prototxt/);
  // The ONNX model ships with Kiln: it is still imported, drawn, built, saved and profiled.
  assert.ok(svgs(mnist).some((s) => s.includes("mnist-8 (ONNX) as imported")));
  assert.ok(mnist.stdout.includes("identical after reload: true"));
  assert.ok(plots(mnist).length >= 2, "the profile and the comparison");
  const int8 = await execute("int8.ipynb", env);
  assertRanCleanly("int8 (no sample data)", int8);
  assert.match(int8.stdout, /note: not found: .*mnist\.prototxt/);
  assert.match(int8.stdout, /note: skipped \(no network\)/);
  assert.equal(plots(int8).length, 0);
  summary.push("mlp, mnist and int8 notebooks without the sample data: notes, no errors");
});

Deno.test("committed notebooks have no outputs, use the Deno kernel and import only ../mod.ts", async () => {
  assert.deepEqual(notebookFiles, [
    "charrnn.ipynb",
    "int8.ipynb",
    "mlp.ipynb",
    "mnist.ipynb",
    "weights.ipynb",
  ]);
  for (const name of notebookFiles) {
    const nb = JSON.parse(await Deno.readTextFile(NOTEBOOKS + name)) as Notebook;
    assert.equal(nb.nbformat, 4, name);
    assert.equal(nb.metadata.kernelspec?.name, "deno", `${name}: kernelspec`);
    nb.cells.forEach((c, i) => {
      if (c.cell_type !== "code") return;
      assert.deepEqual(
        c.outputs,
        [],
        `${name} cell ${i} has outputs: clear them before committing`,
      );
      assert.equal(c.execution_count, null, `${name} cell ${i} has an execution count`);
      for (const m of text(c.source).matchAll(/\bfrom\s+"([^"]+)"/g)) {
        assert.equal(m[1], "../mod.ts", `${name} cell ${i} imports ${m[1]}`);
      }
    });
  }
});

Deno.test("the notebooks' code type-checks against mod.ts", async () => {
  // Each notebook's code cells as one module (the kernel runs them in one scope, in order).
  const dir = await Deno.makeTempDir({ prefix: "kiln-notebook-check-" });
  try {
    const mod = new URL("../../mod.ts", import.meta.url).href;
    const files = [];
    for (const name of notebookFiles) {
      const nb = JSON.parse(await Deno.readTextFile(NOTEBOOKS + name)) as Notebook;
      const code = nb.cells.filter((c) => c.cell_type === "code").map((c) => text(c.source));
      const file = `${dir}/${name.replace(".ipynb", ".ts")}`;
      await Deno.writeTextFile(file, code.join("\n\n").replaceAll('"../mod.ts"', `"${mod}"`));
      files.push(file);
    }
    const config = new URL("../../deno.json", import.meta.url).pathname;
    const r = await run(Deno.execPath(), ["check", "--quiet", `--config=${config}`, ...files]);
    assert.ok(r.ok, `deno check of the notebooks' code failed:\n${r.stderr}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("notebook summary", () => {
  console.log(`notebooks executed:\n  ${summary.join("\n  ")}`);
  if (!hasShared) {
    console.log(`note: ${SHARED} is absent; mlp.ipynb and mnist.ipynb ran only without it`);
  }
});
