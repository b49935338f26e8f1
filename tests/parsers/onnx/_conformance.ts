/**
 * The ONNX conformance runner: imports a test model with parseOnnx, builds it on the CPU, feeds
 * the test's inputs and compares with its expected outputs at ONNX's tolerances. Each case ends
 * as pass, fail, or unsupported (the importer refused an op or a setting with UNSUPPORTED).
 *
 * ONNX's node tests pass shape-like operands (a Reshape's shape, a Slice's starts, TopK's K,
 * even Conv weights) as graph inputs. Kiln needs those at build time, as TensorRT needs shape
 * tensors and (before version 8) weights: when the importer refuses an input for that reason,
 * the runner binds it to the test's value with `constantInputs` and tries again, and says so.
 */
import { buildEngine } from "../../../builder/build.ts";
import { N } from "../../../dsl/ir/dims.ts";
import type { HostArray } from "../../../dsl/ir/dtype.ts";
import { KilnError } from "../../../errors.ts";
import {
  onnxHostArray,
  type OnnxTensorData,
  parseOnnx,
  type ParseOnnxOptions,
  readOnnxTensor,
} from "../../../parsers/onnx/mod.ts";
import { Logger } from "../../../runtime/logger.ts";

export type Status = "pass" | "fail" | "unsupported";

export interface CaseResult {
  name: string;
  status: Status;
  /** Why it failed or was refused. */
  detail: string;
  /** Graph inputs bound to the test's values (see above). */
  frozen: string[];
}

/** ONNX's backend-test tolerances. */
export const ONNX_TOLERANCE = { rtol: 1e-3, atol: 1e-7 };

export interface Expected {
  dims: number[];
  values: ArrayLike<number>;
}

/** Where `got` differs from `want` beyond |g − w| ≤ atol + rtol·|w| (equal values, NaN = NaN pass). */
export function mismatch(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  tol = ONNX_TOLERANCE,
): string | undefined {
  if (got.length !== want.length) return `${got.length} values, ${want.length} expected`;
  for (let i = 0; i < want.length; i++) {
    const g = Number(got[i]), w = Number(want[i]);
    if (g === w || (Number.isNaN(g) && Number.isNaN(w))) continue;
    if (!(Math.abs(g - w) <= tol.atol + tol.rtol * Math.abs(w))) {
      return `element ${i} is ${g}, expected ${w} (rtol ${tol.rtol}, atol ${tol.atol})`;
    }
  }
  return undefined;
}

/**
 * Imports, builds and runs one model. `inputs` by graph input name or, for unnamed tensors, by
 * position among the inputs; `expected` likewise for the outputs. Returns the result.
 */
export async function runModel(
  name: string,
  file: string,
  inputs: OnnxTensorData[],
  expected: (outputs: { name: string; values: HostArray; dims: number[] }[]) => string | undefined,
  options: ParseOnnxOptions & { batch?: number; device?: "cpu" | "cuda" } = {},
): Promise<CaseResult> {
  const frozen: Record<string, OnnxTensorData> = {};
  let network;
  for (;;) {
    try {
      network = (await parseOnnx(file, { ...options, constantInputs: frozen })).network;
      break;
    } catch (e) {
      if (!(e instanceof KilnError)) {
        return { name, status: "fail", detail: `threw ${e}`, frozen: Object.keys(frozen) };
      }
      const value = inputs.find((t) => t.name !== "" && t.name === e.tensor);
      const freezable = e.code === "UNSUPPORTED" && value && !(value.name in frozen) &&
        (/must be a constant/.test(e.message) || (value.dataType !== 1 && value.dataType !== 10));
      if (freezable) {
        frozen[value!.name] = value!;
        continue;
      }
      return {
        name,
        status: e.code === "UNSUPPORTED" ? "unsupported" : "fail",
        detail: `${e.code}: ${e.message.replace(/^[^:]*model\.onnx: /, "")}`,
        frozen: Object.keys(frozen),
      };
    }
  }
  const fail = (detail: string): CaseResult => ({
    name,
    status: "fail",
    detail,
    frozen: Object.keys(frozen),
  });
  try {
    const engine = await buildEngine(network, {
      device: options.device ?? "cpu",
      maxBatchSize: options.batch ?? 1,
      logger: new Logger("error"),
    });
    try {
      const bindings = engine.bindings.filter((b) => b.isInput);
      const feed: Record<string, HostArray> = {};
      const positional = inputs.filter((t) => !(t.name in frozen));
      positional.forEach((t, i) => {
        const b = t.name !== "" ? bindings.find((b) => b.name === t.name) : bindings[i];
        if (!b) throw new Error(`no input binding for test input ${i} "${t.name}"`);
        feed[b.name] = onnxHostArray(t);
      });
      const batched = engine.bindings.some((b) => b.shape[0] === N);
      using ctx = engine.createContext();
      const out = await ctx.execute(feed, { batchSize: batched ? options.batch ?? 1 : undefined });
      const outs = engine.bindings.filter((b) => !b.isInput).map((b) => ({
        name: b.name,
        values: out[b.name],
        dims: b.shape.map((d) => (d === N ? options.batch ?? 1 : d)) as number[],
      }));
      const why = expected(outs);
      return why ? fail(why) : { name, status: "pass", detail: "", frozen: Object.keys(frozen) };
    } finally {
      engine[Symbol.dispose]();
    }
  } catch (e) {
    if (options.device === "cuda" && e instanceof KilnError && e.code === "UNSUPPORTED") {
      // A layer kind without a CUDA kernel: a build-time diagnostic, not a wrong result.
      return {
        name,
        status: "unsupported",
        detail: `no GPU kernel: ${e.message}`,
        frozen: Object.keys(frozen),
      };
    }
    return fail(`${e instanceof KilnError ? e.code : "error"}: ${(e as Error).message ?? e}`);
  }
}

/** Compares outputs with expected tensors (by name, or by position when unnamed). */
export function compareOutputs(
  outs: { name: string; values: HostArray; dims: number[] }[],
  expected: { name: string; dims: number[]; values: ArrayLike<number> }[],
  tol = ONNX_TOLERANCE,
): string | undefined {
  for (const [i, want] of expected.entries()) {
    const got = want.name !== "" ? outs.find((o) => o.name === want.name) : outs[i];
    if (!got) return `no output "${want.name || i}"`;
    const sameDims = got.dims.length === want.dims.length &&
      got.dims.every((d, k) => d === want.dims[k]);
    if (!sameDims) return `output "${got.name}" is [${got.dims}], expected [${want.dims}]`;
    const why = mismatch(got.values, want.values, tol);
    if (why) return `output "${got.name}": ${why}`;
  }
  return undefined;
}

/** A node-test-style folder: model.onnx and test_data_set_N folders of input_i.pb and output_i.pb. */
export async function runTestFolder(
  dir: string,
  name: string,
  device: "cpu" | "cuda" = "cpu",
): Promise<CaseResult> {
  const sets = [...Deno.readDirSync(dir)].filter((e) => e.name.startsWith("test_data_set_"))
    .map((e) => e.name).sort();
  let last: CaseResult = { name, status: "fail", detail: "no test_data_set", frozen: [] };
  for (const set of sets) {
    const read = async (prefix: string) => {
      const files = [...Deno.readDirSync(`${dir}/${set}`)]
        .filter((e) => e.name.startsWith(prefix))
        .map((e) => e.name)
        .sort((a, b) => Number(a.slice(prefix.length, -3)) - Number(b.slice(prefix.length, -3)));
      return await Promise.all(files.map((f) => readOnnxTensor(`${dir}/${set}/${f}`)));
    };
    const inputs = await read("input_");
    const outputs = await read("output_");
    last = await runModel(
      name,
      `${dir}/model.onnx`,
      inputs,
      (outs) => compareOutputs(outs, outputs),
      { device },
    );
    if (last.status !== "pass") return last;
  }
  return last;
}
