/**
 * Tactic selection: for each layer with more than one implementation on the device, time every
 * candidate on the layer's real shapes (largest batch, random inputs, within the workspace limit),
 * keep the fastest and record it in the plan (`layer.tactic`). Timings go through the timing
 * cache when one is given; `deterministic` replays the cache's choices and times nothing.
 *
 * The CPU backend has one kernel per layer: nothing to tune. The verbose log lists, per layer,
 * every tactic timed (or skipped, and why) and the winner; the info log a one-line summary.
 */
import { concreteDims } from "../../dsl/ir/dims.ts";
import { KilnError } from "../../errors.ts";
import type { Manifest, ManifestLayer } from "../../plan/mod.ts";
import type { Backend } from "../../runtime/backend.ts";
import type { Logger } from "../../runtime/logger.ts";
import { type TacticTimingRecord, TimingCache, type TimingEntry } from "./cache.ts";

/** Which tactics the builder may choose from. */
export const TACTIC_SETS = ["all", "builtin", "none"] as const;
export type TacticSet = typeof TACTIC_SETS[number];

/** Bumped when the tactics offered change, so that old cache entries are not replayed. */
export const TACTICS_REVISION = 1;

export interface TuneOptions {
  /** "all": Kiln's kernels and, when found, cuBLASLt/cuDNN; "builtin": Kiln's; "none": defaults. */
  tactics: TacticSet;
  workspaceBytes: number;
  timingCache?: string;
  deterministic: boolean;
  logger: Logger;
}

export interface LayerTuning {
  layer: string;
  tactic: string;
  /** Every candidate: its mean time, or why it was rejected. */
  timings: TacticTimingRecord[];
  fromCache: boolean;
}

export interface TuneReport {
  layers: LayerTuning[];
  timed: number;
  cached: number;
  seconds: number;
}

/** What a tactic choice depends on, as a canonical string (the timing cache's key). */
export function layerSignature(m: Manifest, layer: ManifestLayer, o: TuneOptions): string {
  // A view (plan/views.ts) is a channel slice of a wider tensor: its batch stride and offset
  // change what the tactics read and write, so they are part of the problem.
  const tensor = (t: number) => {
    const d = m.tensors[t];
    const view = d.view
      ? { parentDims: m.tensors[d.view.of].dims, channelOffset: d.view.channelOffset }
      : undefined;
    return {
      dims: concreteDims(d.dims, m.maxBatchSize),
      dtype: d.dtype,
      ...(view ? { view } : {}),
    };
  };
  return JSON.stringify({
    revision: TACTICS_REVISION,
    kind: layer.kind,
    attrs: sortKeys(layer.attrs),
    precision: layer.precision,
    inputs: layer.inputs.map(tensor),
    outputs: layer.outputs.map(tensor),
    weights: Object.keys(layer.weights).sort().map((slot) => ({
      slot,
      dtype: layer.weights[slot].dtype,
      count: layer.weights[slot].count,
    })),
    workspaceBytes: o.workspaceBytes,
    tactics: o.tactics,
  });
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

/** Checks the tuning options of a build configuration; throws INVALID_ARGUMENT. */
export function validateTuneOptions(c: {
  tactics?: unknown;
  timingCache?: unknown;
  deterministic?: unknown;
}): void {
  const bad = (m: string) => new KilnError("INVALID_ARGUMENT", m);
  if (c.tactics !== undefined && !(TACTIC_SETS as readonly unknown[]).includes(c.tactics)) {
    throw bad(`tactics must be one of ${TACTIC_SETS.join(", ")}; got ${JSON.stringify(c.tactics)}`);
  }
  if (c.timingCache !== undefined && !(typeof c.timingCache === "string" && c.timingCache)) {
    throw bad(`timingCache must be a file path; got ${JSON.stringify(c.timingCache)}`);
  }
  if (c.deterministic !== undefined && typeof c.deterministic !== "boolean") {
    throw bad(`deterministic must be a boolean; got ${JSON.stringify(c.deterministic)}`);
  }
  if (c.deterministic === true && c.timingCache === undefined) {
    throw bad("deterministic: true replays a timing cache's choices: give timingCache");
  }
}

/**
 * Chooses a tactic for every tunable layer of `manifest` (sets `layer.tactic`; the default
 * kernel leaves it unset). Returns undefined when the backend has nothing to choose from.
 */
export async function tuneTactics(
  manifest: Manifest,
  weights: Uint8Array,
  backend: Backend,
  o: TuneOptions,
): Promise<TuneReport | undefined> {
  const log = o.logger;
  if (backend.device.kind !== "cuda") {
    log.verbose("tactics: the CPU backend has one kernel per layer; nothing to time");
    return undefined;
  }
  if (o.tactics === "none") {
    log.verbose('tactics: tactics "none": every layer runs its default kernel');
    return undefined;
  }
  // Loaded here only: the CPU path never opens the native library.
  const { CudaTacticTimer, tunable } = await import("../../runtime/cuda/tactic_timer.ts");
  const { tacticLabel } = await import("../../runtime/cuda/tactics.ts");
  const { CudaBackend } = await import("../../runtime/cuda/backend.ts");
  if (!(backend instanceof CudaBackend)) return undefined;
  const indices = manifest.layers.flatMap((l, i) => (tunable(l, manifest) ? [i] : []));
  if (!indices.length) return undefined;

  const t0 = performance.now();
  const p = backend.props;
  const device = { name: p.name, arch: p.arch, driver: p.driverVersion, runtime: p.runtimeVersion };
  const cache = o.timingCache ? TimingCache.open(o.timingCache, device, log) : undefined;
  // Made on the first layer to time (device buffers, weights, random inputs): a build that
  // replays the cache allocates nothing.
  let timer: InstanceType<typeof CudaTacticTimer> | undefined;
  try {
    return run();
  } finally {
    timer?.[Symbol.dispose]();
  }

  function run(): TuneReport {
    const missing: string[] = [];
    const report: TuneReport = { layers: [], timed: 0, cached: 0, seconds: 0 };
    for (const i of indices) {
      const layer = manifest.layers[i];
      const signature = layerSignature(manifest, layer, o);
      let entry: TimingEntry | undefined = cache?.get(signature);
      const fromCache = entry !== undefined;
      if (!entry) {
        if (o.deterministic) {
          missing.push(layer.name);
          continue;
        }
        timer ??= new CudaTacticTimer(
          backend as InstanceType<typeof CudaBackend>,
          manifest,
          weights,
          o.workspaceBytes,
        );
        const { tactics, skipped } = timer.candidates(layer, o.tactics === "all");
        for (const s of skipped) {
          log.verbose(
            `tactics "${layer.name}": ${tacticLabel(s.tactic)} not applicable: ${s.reason}`,
          );
        }
        const timings: TacticTimingRecord[] = tactics.map((t) => ({
          tactic: t,
          ...timer!.time(i, t),
        }));
        const times = timings.filter((t): t is { tactic: string; ms: number } => "ms" in t);
        if (!times.length) {
          throw new KilnError(
            "INTERNAL",
            `no tactic of "${layer.name}" ran, not even its default kernel: ${
              timings.map((t) => `${t.tactic}: ${"rejected" in t ? t.rejected : ""}`).join("; ")
            }`,
            { layer: layer.name },
          );
        }
        const best = times.reduce((a, b) => (b.ms < a.ms ? b : a));
        entry = { layer: layer.name, signature, tactic: best.tactic, timings };
        cache?.set(entry);
        report.timed++;
      } else report.cached++;
      layer.tactic = entry.tactic === "default" ? undefined : entry.tactic;
      report.layers.push({
        layer: layer.name,
        tactic: entry.tactic,
        timings: entry.timings,
        fromCache,
      });
      log.verbose(
        `tactics "${layer.name}"${fromCache ? " (timing cache)" : ""}: ${
          entry.timings.map((t) =>
            `${tacticLabel(t.tactic)} ${
              "ms" in t ? `${t.ms.toFixed(4)} ms` : `rejected (${t.rejected})`
            }`
          ).join(", ")
        } -> ${tacticLabel(entry.tactic)}`,
      );
    }
    if (missing.length) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `deterministic build: the timing cache ${o.timingCache} has no choice for ${missing.length} layer(s): ${
          missing.map((n) => `"${n}"`).join(", ")
        } (build once without deterministic to record them)`,
        { layer: missing[0], file: o.timingCache },
      );
    }
    if (cache?.save()) {
      log.verbose(`tactics: timing cache ${cache.path} written (${cache.size} entries)`);
    }
    report.seconds = (performance.now() - t0) / 1000;
    const changed = report.layers.filter((l) => l.tactic !== "default").length;
    log.info(
      `tactics: ${report.layers.length} layers, ${report.timed} timed, ${report.cached} from the timing cache, ${changed} not on their default kernel (${
        report.seconds.toFixed(2)
      } s)`,
    );
    return report;
  }
}
