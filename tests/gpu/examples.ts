/**
 * The examples on the GPU: each one present under examples/ runs as its own process on the
 * CUDA device and must exit 0; its last line is reported. Examples that have not landed, or
 * that exit 77 (their sample data is absent: nothing was tested), are skipped, not passed.
 *
 * NVIDIA's TensorRT sample data is never in the repository. The GPU machine has no
 * ../shared/data, so a run carries a git-ignored copy in `.gpu-data/` (laid out like
 * ../shared/data: wts/, images/mnist-pgm/, caffe/mnist/); $KILN_GPU_DATA names another folder.
 * Each example gets that folder through its own flags.
 */
import assert from "node:assert/strict";
import type { GpuTest } from "./_harness.ts";

export class Skip extends Error {}

/** The exit code an example uses for "sample data absent". */
const SKIPPED = 77;

function exists(dir: string): boolean {
  try {
    return Deno.statSync(dir).isDirectory;
  } catch {
    return false;
  }
}

/** The sample-data folder to pass, if one exists here. */
function dataDir(): string | undefined {
  const dir = Deno.env.get("KILN_GPU_DATA") ?? new URL("../../.gpu-data", import.meta.url).pathname;
  return exists(dir) ? dir : undefined;
}

/** Each example with the flags that point it at the sample data in `dir`. */
const EXAMPLES: [string, (dir: string) => string[]][] = [
  ["examples/mnist_api.ts", (d) => [`--wts=${d}/wts/mnistapi.wts`, `--data=${d}`]],
  ["examples/mnist_zoo.ts", () => []],
  ["examples/mlp.ts", (d) => [`--wts=${d}/wts/sampleMLP.wts2`, `--data=${d}`]],
  ["examples/onnx_mnist.ts", (d) => [`--data=${d}`]],
];

export function exampleTests(): GpuTest[] {
  return EXAMPLES.map(([path, flags]) => ({
    name: `example ${path} runs on the GPU`,
    async fn() {
      const file = new URL(`../../${path}`, import.meta.url);
      try {
        Deno.statSync(file);
      } catch {
        throw new Skip(`${path} is not in this checkout`);
      }
      const dir = dataDir();
      // Like the suite itself, resolve npm packages from the checkout's node_modules (the GPU
      // machine has no network: deno must not try to fetch deno.json's other packages).
      const modules = exists(new URL("../../node_modules", import.meta.url).pathname)
        ? ["--node-modules-dir=manual"]
        : [];
      const r = await new Deno.Command(Deno.execPath(), {
        args: ["run", ...modules, "-A", file.pathname, "--device=cuda", ...(dir ? flags(dir) : [])],
        env: { KILN_DEVICE: "cuda" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const out = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
      if (r.code === SKIPPED) {
        throw new Skip(`${path}: sample data absent (${out.trim().split("\n").at(-1)})`);
      }
      assert.ok(r.success, `${path} exited with ${r.code}:\n${out.slice(-2000)}`);
      assert.ok(
        !/running on the CPU/.test(out),
        `${path} fell back to the CPU:\n${out.slice(-2000)}`,
      );
      return out.trim().split("\n").at(-1) ?? "";
    },
  }));
}
