/**
 * The GPU suite (`deno task test:gpu`): builds the native library when nvcc is present, prints
 * "no GPU" and exits 0 where there is none, else runs the op harness (every layer kind against
 * the CPU reference), the runtime tests and the examples, and ends with "N passed, M failed".
 *
 *   deno task test:gpu [-- <name filter>]
 */
import { buildNative, findNvcc } from "../cuda/build.ts";
import { deviceCount, loadLibrary } from "../ffi/mod.ts";
import type { GpuTest } from "./gpu/_harness.ts";
import { exampleTests, Skip } from "./gpu/examples.ts";
import { fusionTests } from "./gpu/fusion.ts";
import { opTests } from "./gpu/ops.ts";
import { passEquivalenceTests } from "./gpu/pass_equivalence.ts";
import { passTests } from "./gpu/passes.ts";
import { runtimeTests } from "./gpu/runtime.ts";
import { tuneTests } from "./gpu/tune.ts";

if (await findNvcc()) {
  const r = await buildNative({ log: (l) => console.log(`build: ${l}`) });
  if (r.rebuilt) console.log(`build: ${r.library} in ${r.seconds.toFixed(1)} s`);
}

const { count, reason } = deviceCount(loadLibrary());
if (count === 0) {
  console.log(`no GPU${reason ? ` (${reason})` : ""}: nothing to run`);
  Deno.exit(0);
}

const filter = Deno.args[0];
const tests: GpuTest[] = [...runtimeTests(), ...opTests(), ...exampleTests()]
  .filter((t) => !filter || t.name.includes(filter));
tests.push(...passTests().filter((t) => !filter || t.name.includes(filter)));
tests.push(...tuneTests().filter((t) => !filter || t.name.includes(filter)));
tests.push(...fusionTests().filter((t) => !filter || t.name.includes(filter)));
tests.push(...passEquivalenceTests().filter((t) => !filter || t.name.includes(filter)));
tests.push(
  ...(await import("./gpu/aliases.ts")).aliasTests().filter((t) =>
    !filter || t.name.includes(filter)
  ),
);
tests.push(
  ...(await import("./gpu/rnn.ts")).rnnTests().filter((t) => !filter || t.name.includes(filter)),
);
tests.push(
  ...(await import("./gpu/precision.ts")).precisionTests().filter((t) =>
    !filter || t.name.includes(filter)
  ),
);

let passed = 0, failed = 0, skipped = 0;
const t0 = performance.now();
for (const t of tests) {
  const start = performance.now();
  try {
    const detail = await t.fn();
    const ms = performance.now() - start;
    passed++;
    console.log(`ok   ${t.name} (${ms.toFixed(0)} ms)${detail ? ` — ${detail}` : ""}`);
  } catch (e) {
    if (e instanceof Skip) {
      skipped++;
      console.log(`skip ${t.name}: ${e.message}`);
      continue;
    }
    failed++;
    const err = e as Error;
    console.log(`FAIL ${t.name}: ${err?.stack ?? err}`);
  }
}
const secs = ((performance.now() - t0) / 1000).toFixed(1);
console.log(
  `\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""} (${secs} s)`,
);
Deno.exit(failed ? 1 : 0);
