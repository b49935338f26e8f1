/**
 * The plan fuzz property, run in a worker so that the test can stop it if a mutated plan ever
 * made the reader hang (synchronous code cannot be interrupted from its own thread).
 *
 * Every generated plan is invalid by construction; the property is that loading it throws a
 * KilnError. Three families: raw byte damage (the checksum catches it), header edits with a
 * recomputed checksum (zod, versions, devices, offsets), and manifest edits written through
 * writePlan so that the hashes and checksum are valid (zod, bounds, references, and the
 * engine's layer-by-layer check of attributes, shapes, weights, order and memory).
 */
import fc from "fast-check";
import { buildEngine } from "../../builder/build.ts";
import { KilnError } from "../../errors.ts";
import { LAYERS } from "../../dsl/layers/mod.ts";
import { type Manifest, type PlanDevice, writePlan } from "../../plan/mod.ts";
import { deserializeEngine } from "../../runtime/engine.ts";
import { Logger } from "../../runtime/logger.ts";
import { assemblePlan, planTestNetwork, splitPlan } from "./_craft.ts";

export interface FuzzRequest {
  numRuns: number;
  seed: number;
}

export interface FuzzResult {
  ok: boolean;
  error?: string;
  runs: number;
  ms: number;
  /** Refusals by mutation family and by which check refused. */
  byFamily: Record<string, number>;
  byCheck: Record<string, number>;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
interface Case {
  family: string;
  what: string;
  bytes: Uint8Array;
}

/** A case that prints as its description (not thousands of bytes) in counterexamples. */
function mk(family: string, what: string, bytes: Uint8Array): Case {
  return { family, what, bytes, [fc.toStringMethod]: () => `${family}: ${what}` } as Case;
}

const built = await buildEngine(planTestNetwork(), {
  device: "cpu",
  maxBatchSize: 3,
  logger: new Logger("error"),
});
const PLAN = built.serialize();
built[Symbol.dispose]();
const PARTS = splitPlan(PLAN);
const MANIFEST = JSON.parse(PARTS.manifestText) as Manifest;
const DEVICE = PARTS.header.device as PlanDevice;

// ---- raw byte damage (checksum not recomputed) ----

const flips = fc.uniqueArray(
  fc.record({ at: fc.nat(PLAN.length - 1), mask: fc.integer({ min: 1, max: 255 }) }),
  { minLength: 1, maxLength: 4, selector: (f) => f.at },
).map((fs): Case => {
  const b = PLAN.slice();
  for (const f of fs) b[f.at] ^= f.mask;
  return mk("flip", `flip ${JSON.stringify(fs)}`, b);
});

const truncation = fc.nat(PLAN.length - 1).map((n): Case =>
  mk("truncate", `truncate to ${n}`, PLAN.slice(0, n))
);

const insertion = fc.tuple(fc.nat(PLAN.length), fc.uint8Array({ minLength: 1, maxLength: 32 }))
  .map(([at, extra]): Case => {
    const b = new Uint8Array(PLAN.length + extra.length);
    b.set(PLAN.subarray(0, at));
    b.set(extra, at);
    b.set(PLAN.subarray(at), at + extra.length);
    return mk("insert", `insert ${extra.length} at ${at}`, b);
  });

const extension = fc.uint8Array({ minLength: 1, maxLength: 64 }).map((extra): Case => {
  const b = new Uint8Array(PLAN.length + extra.length);
  b.set(PLAN);
  b.set(extra, PLAN.length);
  return mk("extend", `extend by ${extra.length}`, b);
});

const deletion = fc.tuple(fc.nat(PLAN.length - 1), fc.integer({ min: 1, max: 64 })).map(
  ([at, n]): Case => {
    const b = new Uint8Array([...PLAN.subarray(0, at), ...PLAN.subarray(at + n)]);
    return mk("delete", `delete ${n} at ${at}`, b);
  },
);

// ---- header edits (checksum recomputed) ----

/** A JSON value whose type differs from `v`'s (null, boolean, number, string, array, object). */
function kindOf(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
}
const wrongTypeFor = (v: unknown) =>
  fc.jsonValue({ maxDepth: 2 }).filter((j) => kindOf(j) !== kindOf(v)) as fc.Arbitrary<Json>;

const HEADER_PATHS: string[][] = [
  ["format"],
  ["kilnVersion"],
  ["device"],
  ["device", "kind"],
  ["device", "arch"],
  ["device", "name"],
  ["irHash"],
  ["weightsHash"],
  ["manifestOffset"],
  ["manifestBytes"],
  ["weightsOffset"],
  ["weightsBytes"],
];

function getAt(root: Json, path: (string | number)[]): Json {
  let v = root;
  for (const p of path) v = (v as Record<string, Json>)[p as string];
  return v;
}

function setAt(root: Json, path: (string | number)[], value: Json | undefined): Json {
  if (path.length === 0) return value ?? null;
  const parent = getAt(root, path.slice(0, -1)) as Record<string, Json> | Json[];
  const key = path[path.length - 1];
  if (value === undefined) {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete parent[key as string];
  } else {
    (parent as Record<string | number, Json>)[key] = value;
  }
  return root;
}

const headerValue = (path: string[]) => getAt(PARTS.header as Json, path);
const headerEdit = fc.constantFrom(...HEADER_PATHS).chain((path) => {
  const old = headerValue(path);
  const options: fc.Arbitrary<{ how: string; value: Json | undefined }>[] = [
    wrongTypeFor(old).map((value) => ({ how: "wrong type", value })),
    fc.constant({ how: "delete", value: undefined }),
  ];
  // Another value of the same type is invalid for every field but the device's display name.
  if (path.join(".") !== "device.name") {
    if (typeof old === "number") {
      options.push(
        fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }))
          .filter((v) => v !== old).map((value) => ({ how: "other number", value })),
      );
    }
    if (typeof old === "string") {
      options.push(
        fc.oneof(fc.string(), fc.stringMatching(/^[0-9a-f]{64}$/), fc.constantFrom("cuda", "sm_90"))
          .filter((v) => v !== old).map((value) => ({ how: "other string", value })),
      );
    }
  }
  return fc.oneof(...options).map(({ how, value }): Case =>
    mk(
      "header",
      `header ${path.join(".")}: ${how} ${JSON.stringify(value)}`,
      assemblePlan(PARTS, { editHeader: (h) => setAt(h as Json, path, value) }),
    )
  );
});

const headerNotObject = fc.jsonValue({ maxDepth: 2 }).filter((j) => kindOf(j) !== "object").map(
  (j): Case =>
    mk(
      "header",
      `header replaced by ${JSON.stringify(j)}`,
      assemblePlan(PARTS, { editHeader: () => j }),
    ),
);

// ---- manifest edits (hashes and checksum valid) ----

/** Every path in the manifest's JSON tree. */
function pathsOf(v: Json, prefix: (string | number)[] = []): (string | number)[][] {
  const out = [prefix];
  if (Array.isArray(v)) v.forEach((c, i) => out.push(...pathsOf(c, [...prefix, i])));
  else if (v && typeof v === "object") {
    for (const [k, c] of Object.entries(v)) out.push(...pathsOf(c, [...prefix, k]));
  }
  return out;
}
const MANIFEST_PATHS = pathsOf(MANIFEST as unknown as Json);

/** Keys and elements whose removal leaves a valid (if different) plan. */
function removable(path: (string | number)[]): boolean {
  const s = path.join(".");
  if (path.length === 0) return false;
  if (/\.attrs\.[^.]+$/.test(s)) return false; // attributes have defaults
  if (/\.weights\.(bias|scale|shift|power)$/.test(s)) return false; // optional slots
  if (/^layers\.\d+\.sources\.\d+$/.test(s) || /^build\.passes\./.test(s)) return false;
  if (/^bindings\.\d+$/.test(s) && !MANIFEST.bindings[path[1] as number].isInput) return false;
  return true;
}

function planFrom(m: Json): Uint8Array {
  return writePlan(m as unknown as Manifest, PARTS.weights, DEVICE);
}

const manifestWrongType = fc.constantFrom(...MANIFEST_PATHS).chain((path) =>
  wrongTypeFor(getAt(MANIFEST as unknown as Json, path)).map((value): Case =>
    mk(
      "manifest-type",
      `manifest ${path.join(".")} := ${JSON.stringify(value)}`,
      planFrom(setAt(structuredClone(MANIFEST) as unknown as Json, path, value)),
    )
  )
);

const manifestRemove = fc.constantFrom(...MANIFEST_PATHS.filter(removable)).map((path): Case =>
  mk(
    "manifest-remove",
    `manifest remove ${path.join(".")}`,
    planFrom(setAt(structuredClone(MANIFEST) as unknown as Json, path, undefined)),
  )
);

/** Lifetimes as the memory plan defines them: first and last layer touching a tensor. */
function lifetimes(m: Manifest): [number, number][] {
  const span: [number, number][] = m.tensors.map(() => [Infinity, -Infinity]);
  m.layers.forEach((l, i) => {
    for (const t of [...l.inputs, ...l.outputs]) {
      span[t] = [Math.min(span[t][0], i), Math.max(span[t][1], i)];
    }
  });
  for (const b of m.bindings) {
    if (b.isInput) span[b.tensor][0] = -1;
    else span[b.tensor][1] = m.layers.length;
  }
  return span;
}
const LIVE = lifetimes(MANIFEST);
const COLLIDING: [number, number][] = [];
for (let i = 0; i < LIVE.length; i++) {
  for (let j = 0; j < LIVE.length; j++) {
    const overlap = LIVE[i][0] <= LIVE[j][1] && LIVE[j][0] <= LIVE[i][1];
    if (i !== j && overlap && MANIFEST.memory.offsets[i] !== MANIFEST.memory.offsets[j]) {
      COLLIDING.push([i, j]);
    }
  }
}

const nt = MANIFEST.tensors.length, nl = MANIFEST.layers.length;
const UNKNOWN_KIND = fc.string({ minLength: 1 }).filter((k) => !Object.hasOwn(LAYERS, k));
const WEIGHTED = MANIFEST.layers.flatMap((l, i) =>
  Object.keys(l.weights).map((s) => [i, s] as const)
);
const PRODUCED_LATER = MANIFEST.layers.map((_, i) => i).filter((i) =>
  MANIFEST.layers[i].inputs.some((t) =>
    MANIFEST.layers.slice(0, i).some((p) => p.outputs.includes(t))
  )
);
const ATTR_EDITS: [number, string][] = MANIFEST.layers.flatMap((l, i) =>
  ["outputs", "kernel"].filter((a) => a in l.attrs).map((a) => [i, a] as [number, string])
);

type Edit = { what: string; apply: (m: Manifest) => void };
const semanticEdits: fc.Arbitrary<Edit>[] = [
  fc.tuple(fc.nat(nl - 1), fc.boolean(), fc.nat(30)).map(([l, inp, k]) => ({
    what: `layer ${l} ${inp ? "input" : "output"} → tensor ${nt + k}`,
    apply: (m) => {
      const list = inp ? m.layers[l].inputs : m.layers[l].outputs;
      list[0] = nt + k;
    },
  })),
  fc.tuple(fc.nat(MANIFEST.bindings.length - 1), fc.nat(30)).map(([b, k]) => ({
    what: `binding ${b} → tensor ${nt + k}`,
    apply: (m) => void (m.bindings[b].tensor = nt + k),
  })),
  fc.tuple(fc.nat(nt - 1), fc.nat(3), fc.integer({ min: 1, max: 40 })).map(([t, d, v]) => ({
    what: `tensor ${t} dim ${d} := ${v}`,
    apply: (m) => {
      const dims = m.tensors[t].dims;
      const at = Math.min(d, dims.length - 1) || (dims.length > 1 ? 1 : 0);
      dims[at] = dims[at] === v ? v + 1 : v;
    },
  })),
  fc.tuple(fc.nat(nt - 1), fc.constantFrom("float32", "float16", "int8", "int32" as const)).map((
    [t, dt],
  ) => ({
    what: `tensor ${t} dtype := ${dt}`,
    apply: (m) => {
      const tt = m.tensors[t];
      tt.dtype = tt.dtype === dt ? (dt === "float32" ? "int32" : "float32") : dt;
    },
  })),
  fc.tuple(fc.constantFrom(...WEIGHTED), fc.nat(5000)).map(([[l, s], c]) => ({
    what: `layer ${l} weights ${s} count := ${c}`,
    apply: (m) => {
      const w = m.layers[l].weights[s];
      w.count = w.count === c ? c + 1 : c;
    },
  })),
  fc.tuple(fc.constantFrom(...WEIGHTED), fc.integer({ min: 1, max: 4096 })).map(([[l, s], d]) => ({
    what: `layer ${l} weights ${s} offset moved out of bounds or off alignment by ${d}`,
    apply: (m) => {
      const w = m.layers[l].weights[s];
      w.offset = d % 4 !== 0 ? w.offset + d : PARTS.weights.length - w.count * 4 + d;
    },
  })),
  fc.tuple(fc.constantFrom(...WEIGHTED), fc.constantFrom("float16", "int8", "int32" as const)).map((
    [[l, s], dt],
  ) => ({
    what: `layer ${l} weights ${s} dtype := ${dt}`,
    apply: (m) => void (m.layers[l].weights[s].dtype = dt),
  })),
  fc.tuple(fc.nat(nl - 1), UNKNOWN_KIND).map(([l, k]) => ({
    what: `layer ${l} kind := ${JSON.stringify(k)}`,
    apply: (m) => void (m.layers[l].kind = k),
  })),
  fc.tuple(fc.constantFrom(...ATTR_EDITS), fc.integer({ min: 1, max: 9 })).map(([[l, a], v]) => ({
    what: `layer ${l} attrs.${a} := ${v}`,
    apply: (m) => {
      const attrs = m.layers[l].attrs;
      const old = JSON.stringify(attrs[a]);
      attrs[a] = a === "kernel" ? [v, v] : v;
      if (JSON.stringify(attrs[a]) === old) attrs[a] = a === "kernel" ? [v + 1, v] : v + 1;
    },
  })),
  fc.integer({ min: 1, max: 1000 }).map((k) => ({
    what: `maxBatchSize + ${k}`,
    apply: (m) => void (m.maxBatchSize += k),
  })),
  fc.integer({ min: 1, max: 7680 }).map((k) => ({
    what: `arenaBytes - ${k}`,
    apply: (m) => void (m.memory.arenaBytes = Math.max(0, m.memory.arenaBytes - k)),
  })),
  fc.tuple(fc.nat(nt - 1), fc.nat(100_000)).map(([t, k]) => ({
    what: `tensor ${t} arena offset past the arena by ${k}`,
    apply: (m) => void (m.memory.offsets[t] = m.memory.arenaBytes - 4 + 256 * k + 4),
  })),
  fc.constantFrom(...COLLIDING).map(([i, j]) => ({
    what: `tensor ${i} placed on live tensor ${j}`,
    apply: (m) => void (m.memory.offsets[i] = m.memory.offsets[j]),
  })),
  fc.nat(MANIFEST.bindings.length - 1).map((b) => ({
    what: `binding ${b} isInput flipped`,
    apply: (m) => void (m.bindings[b].isInput = !m.bindings[b].isInput),
  })),
  fc.tuple(fc.nat(MANIFEST.bindings.length - 1), fc.nat(MANIFEST.bindings.length - 2)).map((
    [a, k],
  ) => ({
    what: `binding ${a} renamed like another`,
    apply: (m) => {
      const other = (a + 1 + k) % m.bindings.length;
      m.bindings[a].name = m.bindings[other].name;
    },
  })),
  fc.constantFrom(...PRODUCED_LATER).map((l) => ({
    what: `layer ${l} moved before its producers`,
    apply: (m) => void m.layers.unshift(...m.layers.splice(l, 1)),
  })),
];

const manifestSemantic = fc.oneof(...semanticEdits).map((e): Case => {
  const m = structuredClone(MANIFEST);
  e.apply(m);
  return mk("manifest-semantic", e.what, planFrom(m as unknown as Json));
});

const anyCase = fc.oneof(
  { arbitrary: flips, weight: 2 },
  { arbitrary: truncation, weight: 1 },
  { arbitrary: insertion, weight: 1 },
  { arbitrary: extension, weight: 1 },
  { arbitrary: deletion, weight: 1 },
  { arbitrary: headerEdit, weight: 3 },
  { arbitrary: headerNotObject, weight: 1 },
  { arbitrary: manifestWrongType, weight: 4 },
  { arbitrary: manifestRemove, weight: 3 },
  { arbitrary: manifestSemantic, weight: 6 },
);

/** Which check refused a plan, from the error's code and wording. */
function checkOf(e: KilnError): string {
  if (e.code !== "PLAN_INVALID") return e.code;
  const m = e.message;
  if (/checksum/.test(m)) return "checksum";
  if (/^invalid plan: header: /.test(m)) return "header zod";
  if (/^invalid plan: manifest: /.test(m)) return "manifest zod";
  if (/not valid JSON/.test(m)) return "json";
  if (/lies? outside|runs past|too short|does not end|not aligned/.test(m)) return "bounds";
  if (/hash/.test(m)) return "hash";
  if (/refers to tensor/.test(m)) return "references";
  return "layers/order/memory";
}

export async function fuzzPlans(req: FuzzRequest): Promise<FuzzResult> {
  const byFamily: Record<string, number> = {}, byCheck: Record<string, number> = {};
  const t0 = performance.now();
  let runs = 0;
  try {
    await fc.assert(
      fc.asyncProperty(anyCase, async (c) => {
        runs++;
        if (c.bytes.length === PLAN.length && c.bytes.every((b, i) => b === PLAN[i])) {
          throw new Error(`generator bug: "${c.what}" left the plan unchanged`);
        }
        let refused: unknown;
        try {
          const e = await deserializeEngine(c.bytes, { device: "cpu" });
          e[Symbol.dispose]();
        } catch (e) {
          refused = e;
        }
        if (refused === undefined) throw new Error(`accepted: ${c.what}`);
        if (!(refused instanceof KilnError)) {
          throw new Error(`not a KilnError for ${c.what}: ${refused}`, { cause: refused });
        }
        byFamily[c.family] = (byFamily[c.family] ?? 0) + 1;
        const check = checkOf(refused);
        byCheck[check] = (byCheck[check] ?? 0) + 1;
      }),
      { numRuns: req.numRuns, seed: req.seed },
    );
    return { ok: true, runs, ms: performance.now() - t0, byFamily, byCheck };
  } catch (e) {
    return { ok: false, error: String(e), runs, ms: performance.now() - t0, byFamily, byCheck };
  }
}

// Worker entry: one request in, one result out.
const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<FuzzRequest>) => void) | null;
  postMessage?: (r: FuzzResult) => void;
};
if (typeof scope.postMessage === "function" && "WorkerGlobalScope" in globalThis) {
  scope.onmessage = async (e) => scope.postMessage!(await fuzzPlans(e.data));
}
