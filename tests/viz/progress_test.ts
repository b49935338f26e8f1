import assert from "node:assert/strict";
import { progress } from "../../viz/progress.ts";

Deno.test("progress in a notebook: one display updated in place, at most ten redraws a second", () => {
  const calls: { bundle: Record<string, unknown>; id?: string; update?: boolean }[] = [];
  let clock = 0;
  const bar = progress("building", 200, {
    jupyter: (bundle, o) => calls.push({ bundle, id: o.display_id, update: o.update }),
    now: () => clock,
  });
  for (let i = 1; i <= 200; i++) {
    clock += 2; // 2 ms per step: 400 ms in all
    bar.update(i, `step ${i}`);
  }
  bar.finish("done");
  // The first draw, then one per 100 ms (not one per percent), the last step, and finish().
  assert.ok(calls.length >= 4 && calls.length <= 8, `${calls.length} redraws`);
  assert.ok(calls.every((c) => c.id === calls[0].id), "one display_id");
  assert.deepEqual(calls.map((c) => c.update), [false, ...calls.slice(1).map(() => true)]);
  const last = calls.at(-1)!.bundle;
  assert.match(last["text/plain"] as string, /^building \[#{30}\] 100% 200\/200 done$/);
  assert.match(last["text/html"] as string, /<progress value="200" max="200">/);
});

Deno.test("progress on a terminal redraws one line in place; elsewhere it stays quiet", () => {
  const written: string[] = [];
  const terminal = {
    isTerminal: () => true,
    writeSync: (b: Uint8Array) => written.push(new TextDecoder().decode(b)),
  };
  const bar = progress("calibrating", 4, { stream: terminal });
  for (let i = 1; i <= 4; i++) bar.update(i);
  bar.finish();
  assert.ok(written.every((w) => w.startsWith("\r")));
  assert.equal(written.at(-1), "\rcalibrating [##############################] 100% 4/4\n");
  assert.ok(written[0].includes("[########----------------------]  25% 1/4"), written[0]);

  const quiet: string[] = [];
  const piped = progress("x", 3, {
    stream: { isTerminal: () => false, writeSync: (b) => quiet.push(String(b)) },
  });
  piped.update(1);
  piped.finish();
  assert.deepEqual(quiet, []);
  // Outside a kernel (here: deno test), reading Deno.jupyter throws; progress() must not.
  const plain = progress("plain", 2);
  plain.update(1);
  plain.finish();
});
