import assert from "node:assert/strict";
import type { FuzzRequest, FuzzResult } from "./_plan_fuzz_worker.ts";

/** The whole property must finish well inside this; a hang in the reader fails the test. */
const LIMIT_MS = 45_000;

/** Runs the fuzz property in a worker, terminating it if it outlives the limit. */
async function fuzzInWorker(req: FuzzRequest): Promise<FuzzResult | "timeout"> {
  const worker = new Worker(new URL("./_plan_fuzz_worker.ts", import.meta.url).href, {
    type: "module",
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await new Promise<FuzzResult | "timeout">((resolve, reject) => {
      timer = setTimeout(() => resolve("timeout"), LIMIT_MS);
      worker.onmessage = (e: MessageEvent<FuzzResult>) => resolve(e.data);
      worker.onerror = (e) => {
        e.preventDefault();
        reject(new Error(`fuzz worker failed: ${e.message}`));
      };
      worker.postMessage(req);
    });
  } finally {
    clearTimeout(timer);
    worker.terminate();
  }
}

Deno.test("plan fuzz: 2,500 mutated, truncated and extended plans are all refused with a KilnError", async () => {
  const result = await fuzzInWorker({ numRuns: 2500, seed: 20261122 });
  assert.notEqual(result, "timeout", `the fuzz did not finish in ${LIMIT_MS} ms (a hang?)`);
  const r = result as FuzzResult;
  assert.ok(r.ok, r.error);
  assert.equal(r.runs, 2500);
  console.log(
    `  ${r.runs} plans in ${(r.ms / 1000).toFixed(1)} s; by family ${
      JSON.stringify(r.byFamily)
    }; ` +
      `refused by ${JSON.stringify(r.byCheck)}`,
  );
  // Not only the checksum: every later check refused some plans.
  for (const check of ["checksum", "header zod", "manifest zod", "bounds", "layers/order/memory"]) {
    assert.ok((r.byCheck[check] ?? 0) > 0, `no plan was refused by the ${check} check`);
  }
  for (const code of ["PLAN_VERSION", "PLAN_DEVICE", "UNSUPPORTED"]) {
    assert.ok((r.byCheck[code] ?? 0) > 0, `no plan was refused with ${code}`);
  }
  assert.ok(r.ms < LIMIT_MS);
});
