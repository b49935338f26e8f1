/**
 * Builds the native library `cuda/build/libkiln.so` with nvcc (`deno task build:native`).
 *
 * One shared library with machine code for sm_80, sm_86, sm_89 and sm_90 plus PTX for
 * compute_90 (newer GPUs JIT it), `-O3`, warnings as errors on both the device and the host side,
 * the CUDA runtime linked statically so the library loads where no CUDA runtime is installed.
 *
 * Incremental: each object is keyed by a hash of its source, every header, the flags and the
 * compiler's version, stored next to it; the library by the hash of its objects' keys. Nothing is
 * rebuilt when nothing changed. Objects and the library are written to a temporary name and
 * renamed, so an interrupted build never leaves a truncated file behind.
 *
 *   deno run -A cuda/build.ts [--force] [--quiet]
 */
import { createHash } from "node:crypto";

const ROOT = new URL("./", import.meta.url);
const SRC = new URL("src/", ROOT);
const INCLUDE = new URL("include/", ROOT);
export const BUILD_DIR = new URL("build/", ROOT);
export const LIBRARY = new URL("libkiln.so", BUILD_DIR);

const ARCHS = [80, 86, 89, 90];
const PTX_ARCH = 90;

const GENCODE = ARCHS.map((a) =>
  a === PTX_ARCH
    ? `-gencode=arch=compute_${a},code=[sm_${a},compute_${a}]`
    : `-gencode=arch=compute_${a},code=sm_${a}`
);

const COMPILE_FLAGS = [
  "-O3",
  "-std=c++17",
  ...GENCODE,
  "--Werror",
  "all-warnings",
  "-Xcompiler=-fPIC,-Wall,-Werror,-fvisibility=hidden",
  "--cudart",
  "static",
];

const LINK_FLAGS = [
  "-shared",
  ...GENCODE,
  "--cudart",
  "static",
  // Keep the static CUDA runtime's own symbols out of the library's exports.
  "-Xlinker=--exclude-libs,ALL",
  "-Xlinker=-z,defs",
];

export interface BuildOptions {
  /** Rebuild everything even when the keys match. */
  force?: boolean;
  /** Progress messages; silent when omitted. */
  log?: (line: string) => void;
  /** The nvcc to use; found with `findNvcc()` when omitted. */
  nvcc?: string;
}

export interface BuildResult {
  library: string;
  /** Whether anything was compiled or linked. */
  rebuilt: boolean;
  compiled: string[];
  seconds: number;
}

/** nvcc from $NVCC, the PATH, or /usr/local/cuda; undefined when none runs. */
export async function findNvcc(): Promise<string | undefined> {
  const candidates = [Deno.env.get("NVCC"), "nvcc", "/usr/local/cuda/bin/nvcc"].filter(
    (c): c is string => !!c,
  );
  for (const c of candidates) {
    try {
      const r = await new Deno.Command(c, { args: ["--version"], stdout: "null", stderr: "null" })
        .output();
      if (r.success) return c;
    } catch {
      // not found: try the next one
    }
  }
  return undefined;
}

export async function buildNative(options: BuildOptions = {}): Promise<BuildResult> {
  const t0 = performance.now();
  const log = options.log ?? (() => {});
  const nvcc = options.nvcc ?? await findNvcc();
  if (!nvcc) {
    throw new Error("nvcc was not found (set NVCC, put it on the PATH or install CUDA 12+)");
  }
  const version = await run(nvcc, ["--version"]);
  const sources = [...listFiles(SRC, ".cu")].sort();
  const headers = [...listFiles(INCLUDE, ".h"), ...listFiles(SRC, ".cuh")].sort();
  const headerHash = hashFiles(headers);
  const objDir = new URL("obj/", BUILD_DIR);
  Deno.mkdirSync(objDir, { recursive: true });

  const jobs = sources.map((src) => {
    const rel = src.slice(SRC.pathname.length);
    const obj = new URL(rel.replaceAll("/", "_").replace(/\.cu$/, ".o"), objDir).pathname;
    const key = sha256(
      [hashFiles([src]), headerHash, COMPILE_FLAGS.join(" "), version].join("\n"),
    );
    return { src, rel, obj, key };
  });
  const stale = jobs.filter((j) => options.force || readKey(j.obj) !== j.key);
  const includes = ["-I", INCLUDE.pathname, "-I", SRC.pathname];
  await pool(stale, Math.max(1, navigator.hardwareConcurrency ?? 1), async (j) => {
    log(`nvcc ${j.rel}`);
    const tmp = `${j.obj}.${Deno.pid}.tmp`;
    await run(nvcc, [...COMPILE_FLAGS, ...includes, "-c", j.src, "-o", tmp]);
    Deno.renameSync(tmp, j.obj);
    writeAtomic(`${j.obj}.key`, j.key);
  });

  const lib = LIBRARY.pathname;
  const libKey = sha256([...jobs.map((j) => j.key), LINK_FLAGS.join(" ")].join("\n"));
  let rebuilt = stale.length > 0;
  if (options.force || rebuilt || readKey(lib) !== libKey || !exists(lib)) {
    log(`link ${lib}`);
    const tmp = `${lib}.${Deno.pid}.tmp`;
    await run(nvcc, [...LINK_FLAGS, ...jobs.map((j) => j.obj), "-o", tmp]);
    Deno.renameSync(tmp, lib);
    writeAtomic(`${lib}.key`, libKey);
    rebuilt = true;
  }
  return {
    library: lib,
    rebuilt,
    compiled: stale.map((j) => j.rel),
    seconds: (performance.now() - t0) / 1000,
  };
}

async function run(cmd: string, args: string[]): Promise<string> {
  const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const out = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
  if (!r.success) throw new Error(`${cmd} ${args.join(" ")} failed:\n${out}`);
  return out;
}

async function pool<T>(items: T[], width: number, f: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await f(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

function* listFiles(dir: URL, ext: string): Generator<string> {
  for (const e of Deno.readDirSync(dir)) {
    const p = new URL(e.name + (e.isDirectory ? "/" : ""), dir);
    if (e.isDirectory) yield* listFiles(p, ext);
    else if (e.name.endsWith(ext)) yield p.pathname;
  }
}

function sha256(s: string | Uint8Array): string {
  return createHash("sha256").update(s).digest("hex");
}

function hashFiles(paths: string[]): string {
  const h = createHash("sha256");
  for (const p of paths) h.update(p).update(Deno.readFileSync(p));
  return h.digest("hex");
}

function readKey(path: string): string | undefined {
  try {
    if (!exists(path)) return undefined;
    return Deno.readTextFileSync(`${path}.key`).trim();
  } catch {
    return undefined;
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.${Deno.pid}.tmp`;
  Deno.writeTextFileSync(tmp, text);
  Deno.renameSync(tmp, path);
}

if (import.meta.main) {
  const quiet = Deno.args.includes("--quiet");
  try {
    const r = await buildNative({
      force: Deno.args.includes("--force"),
      log: quiet ? undefined : (l) => console.log(l),
    });
    console.log(
      r.rebuilt
        ? `built ${r.library} (${r.compiled.length} object(s) compiled) in ${
          r.seconds.toFixed(1)
        } s`
        : `${r.library} is up to date`,
    );
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(1);
  }
}
