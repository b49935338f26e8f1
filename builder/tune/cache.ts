/**
 * The timing cache (`timingCache` build option): per layer signature, every tactic timed and
 * the winner, so that a second build of the same network re-times nothing.
 *
 * One JSON file, keyed as a whole by the device (name, compute capability, driver and CUDA
 * runtime versions): a cache made elsewhere is stale, reported, and replaced rather than applied.
 * Entries are keyed by the SHA-256 of the layer's signature (kind, attributes, shapes at the
 * largest batch, dtypes, weight slots, precision, workspace limit, tactic set), which is also
 * stored, so that a collision or a hand-edited key is caught. Written atomically: a temp file in
 * the same folder, then a rename.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { KilnError } from "../../errors.ts";
import type { Logger } from "../../runtime/logger.ts";

export const TIMING_CACHE_FORMAT = "kiln-timing-cache";
export const TIMING_CACHE_VERSION = 1;

export interface DeviceKey {
  name: string;
  /** Compute capability, "sm_90". */
  arch: string;
  driver: number;
  runtime: number;
}

const timingSchema = z.union([
  z.object({ tactic: z.string().min(1), ms: z.number().nonnegative() }),
  z.object({ tactic: z.string().min(1), rejected: z.string() }),
]);

const entrySchema = z.object({
  /** The layer it was timed for (for people reading the file; not part of the key). */
  layer: z.string(),
  signature: z.string(),
  tactic: z.string().min(1),
  timings: z.array(timingSchema),
});

const fileSchema = z.object({
  format: z.literal(TIMING_CACHE_FORMAT),
  version: z.literal(TIMING_CACHE_VERSION),
  device: z.object({
    name: z.string(),
    arch: z.string(),
    driver: z.number().int(),
    runtime: z.number().int(),
  }),
  entries: z.record(z.string().regex(/^[0-9a-f]{64}$/), entrySchema),
});

export type TimingEntry = z.output<typeof entrySchema>;
export type TacticTimingRecord = z.output<typeof timingSchema>;

/** The cache key of a signature. */
export function signatureKey(signature: string): string {
  return createHash("sha256").update(signature).digest("hex");
}

function sameDevice(a: DeviceKey, b: DeviceKey): boolean {
  return a.name === b.name && a.arch === b.arch && a.driver === b.driver &&
    a.runtime === b.runtime;
}

function describe(d: DeviceKey): string {
  return `${d.name} (${d.arch}, driver ${d.driver}, CUDA ${d.runtime})`;
}

export class TimingCache {
  #entries = new Map<string, TimingEntry>();
  #dirty = false;

  private constructor(readonly path: string, readonly device: DeviceKey) {}

  /**
   * Opens the cache at `path` for `device`: empty when the file does not exist, or (with a
   * warning) when it was made for another device or an older format. A file that is not a Kiln
   * timing cache at all is an error, so that a mistyped path never overwrites someone's file.
   */
  static open(path: string, device: DeviceKey, logger?: Logger): TimingCache {
    const cache = new TimingCache(path, device);
    let text: string;
    try {
      text = Deno.readTextFileSync(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return cache;
      throw new KilnError(
        "IO_ERROR",
        `cannot read the timing cache ${path}: ${(e as Error).message}`,
        { file: path },
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    const marker = (json as { format?: unknown } | undefined)?.format;
    if (marker !== TIMING_CACHE_FORMAT) {
      throw new KilnError(
        "INVALID_ARGUMENT",
        `${path} is not a Kiln timing cache (no "format": "${TIMING_CACHE_FORMAT}"); refusing to overwrite it`,
        { file: path },
      );
    }
    const parsed = fileSchema.safeParse(json);
    if (!parsed.success) {
      logger?.warning(
        `timing cache ${path} is of another version or malformed (${
          parsed.error.issues[0]?.message ?? "?"
        }); every layer is timed again and the file rewritten`,
      );
      cache.#dirty = true;
      return cache;
    }
    if (!sameDevice(parsed.data.device, device)) {
      logger?.warning(
        `timing cache ${path} is stale: made on ${describe(parsed.data.device)}, this is ${
          describe(device)
        }; every layer is timed again and the file rewritten`,
      );
      cache.#dirty = true;
      return cache;
    }
    for (const [key, entry] of Object.entries(parsed.data.entries)) {
      if (signatureKey(entry.signature) !== key) {
        logger?.warning(
          `timing cache ${path}: the entry for "${entry.layer}" does not match its key; dropped`,
        );
        cache.#dirty = true;
        continue;
      }
      cache.#entries.set(key, entry);
    }
    return cache;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(signature: string): TimingEntry | undefined {
    const e = this.#entries.get(signatureKey(signature));
    return e && e.signature === signature ? e : undefined;
  }

  set(entry: TimingEntry): void {
    this.#entries.set(signatureKey(entry.signature), entry);
    this.#dirty = true;
  }

  /** Writes the file (temp file, then rename) when anything changed. Returns whether it did. */
  save(): boolean {
    if (!this.#dirty) return false;
    const body = {
      format: TIMING_CACHE_FORMAT,
      version: TIMING_CACHE_VERSION,
      device: this.device,
      entries: Object.fromEntries(
        [...this.#entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
      ),
    };
    writeAtomic(this.path, JSON.stringify(body, null, 1) + "\n");
    this.#dirty = false;
    return true;
  }
}

/** Writes `text` to a temp file beside `path`, then renames it over `path`. */
export function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    Deno.writeTextFileSync(tmp, text);
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch {
      // nothing was written
    }
    throw new KilnError(
      "IO_ERROR",
      `cannot write the timing cache ${path}: ${(e as Error).message}`,
      { file: path },
    );
  }
}
