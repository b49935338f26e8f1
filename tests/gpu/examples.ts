/**
 * The examples on the GPU: each one present under examples/ runs as its own process (device
 * "auto" picks the GPU here) and must exit 0; its last line is reported. Examples that have
 * not landed are skipped, not passed.
 */
import assert from "node:assert/strict";
import type { GpuTest } from "./_harness.ts";

export class Skip extends Error {}

const EXAMPLES = ["examples/mnist_api.ts", "examples/mnist_zoo.ts", "examples/mlp.ts"];

export function exampleTests(): GpuTest[] {
  return EXAMPLES.map((path) => ({
    name: `example ${path} runs on the GPU`,
    async fn() {
      const file = new URL(`../../${path}`, import.meta.url);
      try {
        Deno.statSync(file);
      } catch {
        throw new Skip(`${path} is not in this checkout`);
      }
      const r = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", file.pathname],
        env: { KILN_DEVICE: "cuda" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const out = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
      assert.ok(r.success, `${path} exited with ${r.code}:\n${out.slice(-2000)}`);
      assert.ok(
        !/running on the CPU/.test(out),
        `${path} fell back to the CPU:\n${out.slice(-2000)}`,
      );
      return out.trim().split("\n").at(-1) ?? "";
    },
  }));
}
