/**
 * Passes as values (after TVM): a pass has a name, a level and what it requires; the build can
 * disable passes by name and instruments every one (time, layers before and after, what it did
 * in words a person can read). Passes rewrite a private copy of the user's network.
 */
import type { NetworkGraph } from "../dsl/ir/graph.ts";
import { KilnError } from "../errors.ts";
import type { Logger } from "../runtime/logger.ts";

export interface PassContext {
  network: NetworkGraph;
  logger: Logger;
  /** Whether the target backend has a kernel for a layer kind. */
  supports(kind: string): boolean;
}

export interface Pass {
  name: string;
  /** What the pass does, in a sentence. */
  description: string;
  /** 0: always needed; 1: standard optimization; 2: aggressive. */
  level: number;
  /** Passes that must have run (or been disabled explicitly) before this one. */
  requires: readonly string[];
  /** Rewrites the network; returns one line per change it made. */
  run(ctx: PassContext): string[];
}

export interface PassRecord {
  pass: string;
  layersBefore: number;
  layersAfter: number;
  ms: number;
  changes: string[];
}

/**
 * Runs the passes in order, skipping those disabled by name ("all" disables every pass of
 * level ≥ 1). Unknown names in `disabled` are an error (a typo would silently keep a pass).
 */
export function runPasses(
  passes: readonly Pass[],
  ctx: PassContext,
  disabled: readonly string[] | "all" = [],
): PassRecord[] {
  const names = new Set(passes.map((p) => p.name));
  const off = new Set(
    disabled === "all" ? passes.filter((p) => p.level >= 1).map((p) => p.name) : disabled,
  );
  if (disabled !== "all") {
    for (const n of off) {
      if (!names.has(n)) {
        throw new KilnError(
          "INVALID_ARGUMENT",
          `disablePasses names an unknown pass "${n}"; passes: ${[...names].join(", ")}`,
        );
      }
    }
  }
  const records: PassRecord[] = [];
  const ran = new Set<string>();
  for (const p of passes) {
    if (off.has(p.name)) {
      ctx.logger.info(`pass ${p.name}: disabled`);
      continue;
    }
    for (const r of p.requires) {
      if (!ran.has(r) && !off.has(r)) {
        throw new KilnError("INTERNAL", `pass ${p.name} requires ${r}, which has not run`);
      }
    }
    const before = ctx.network.layers.length;
    const t0 = performance.now();
    const changes = p.run(ctx);
    const rec = {
      pass: p.name,
      layersBefore: before,
      layersAfter: ctx.network.layers.length,
      ms: performance.now() - t0,
      changes,
    };
    records.push(rec);
    ran.add(p.name);
    ctx.logger.info(
      `pass ${p.name}: ${
        changes.length ? `${changes.length} change(s)` : "nothing to do"
      }, layers ${before} → ${rec.layersAfter}`,
    );
    for (const c of changes) ctx.logger.verbose(`  ${p.name}: ${c}`);
  }
  return records;
}
