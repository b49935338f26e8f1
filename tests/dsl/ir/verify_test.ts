import assert from "node:assert/strict";
import { buildEngine } from "../../../builder/build.ts";
import { KilnError } from "../../../errors.ts";
import { verifyNetwork } from "../../../dsl/ir/verify.ts";
import { N, Network } from "../../../dsl/network.ts";
import { MemoryLogger } from "../../../runtime/logger.ts";

/**
 * Five independent faults in one network: a dangling input (a tensor of another network wired in
 * with setInput), a cycle made with setInput, a layer whose attributes no longer give its output
 * shape, missing weights, and no marked output.
 */
function brokenNetwork(): Network {
  const net = new Network();
  const x = net.input("x", [N, 1, 8, 8]);
  const foreign = new Network().input("elsewhere", [N, 1, 8, 8]);
  net.addActivation(x, { type: "relu", name: "dangle" }).setInput(0, foreign);
  const c1 = net.addActivation(x, { type: "sigmoid", name: "c1" });
  const c2 = net.addActivation(c1.output(0), { type: "tanh", name: "c2" });
  c1.setInput(0, c2.output(0));
  const pool = net.addPooling(x, { type: "max", window: 2, name: "pool" });
  pool.attrs.window = [4, 4];
  const fc = net.addFullyConnected(x, { outputs: 2, weights: new Float32Array(128), name: "fc" });
  fc.weights.delete("weights");
  return net;
}

function expectProblems(e: unknown): KilnError {
  assert.ok(e instanceof KilnError, `expected a KilnError, got ${e}`);
  assert.equal(e.code, "INVALID_NETWORK");
  return e;
}

Deno.test("verify reports every independent problem in one KilnError", () => {
  const net = brokenNetwork();
  let error: KilnError | undefined;
  try {
    net.verify();
  } catch (e) {
    error = expectProblems(e);
  }
  assert.ok(error, "verify() did not throw");
  const problems = error.problems;
  assert.equal(problems.length, 5, problems.map((p) => p.message).join("\n"));
  assert.match(error.message, /^the network has 5 problems:/);
  const find = (re: RegExp) => {
    const p = problems.find((q) => re.test(q.message));
    assert.ok(p, `no problem matches ${re}: ${problems.map((q) => q.message).join(" | ")}`);
    return p;
  };
  const dangling = find(/dangling/);
  assert.equal(dangling.layer, "dangle");
  assert.equal(dangling.tensor, "elsewhere");
  assert.match(dangling.message, /layer "dangle" input 0 \("elsewhere"\) is dangling/);
  const cycle = find(/cycle/);
  assert.match(cycle.message, /"c1"/);
  assert.match(cycle.message, /"c2"/);
  assert.ok(cycle.layer === "c1" || cycle.layer === "c2");
  const shape = find(/output "pool"/);
  assert.equal(shape.layer, "pool");
  assert.equal(shape.tensor, "pool");
  assert.match(
    shape.message,
    /is \[N,1,4,4\] float32 but its inputs and attributes give \[N,1,2,2\]/,
  );
  const weights = find(/weights "weights" are missing/);
  assert.equal(weights.layer, "fc");
  assert.match(weights.message, /layer "fc"/);
  find(/no tensor is marked as an output/);
  // Every problem is also in the message, numbered.
  for (const [i, p] of problems.entries()) {
    assert.ok(error.message.includes(`${i + 1}. ${p.message}`));
  }
});

Deno.test("verify problems do not stop at the first: buildEngine refuses with the same list", async () => {
  await assert.rejects(
    () => buildEngine(brokenNetwork(), { device: "cpu", logger: new MemoryLogger() }),
    (e: unknown) => {
      expectProblems(e);
      assert.equal((e as KilnError).problems.length, 5);
      return true;
    },
  );
});

Deno.test("verify reports attribute, dtype, input-count, weight-size and foreign-output problems", () => {
  const net = new Network();
  const x = net.input("x", [N, 4]);
  const ints = net.input("ints", [N, 4], "int32");
  const act = net.addActivation(x, { type: "relu", name: "act" });
  act.attrs.type = "swish";
  const sm = net.addSoftMax(x, { name: "sm" });
  sm.setInput(0, ints);
  const two = net.addActivation(x, { type: "tanh", name: "two" });
  two.setInput(1, x);
  const fc = net.addFullyConnected(x, { outputs: 3, weights: new Float32Array(12), name: "fc" });
  fc.setWeights("bias", [1, 2]);
  net.markOutput(act.output(0));
  net.markOutput(sm.output(0));
  net.markOutput(two.output(0));
  net.markOutput(fc.output(0));
  net.outputs.push(new Network().input("alien", [2]));
  const report = verifyNetwork(net);
  const byLayer = (name: string) => report.problems.filter((p) => p.layer === name);
  assert.match(byLayer("act")[0].message, /attribute "type".*given: "swish"/);
  assert.equal(byLayer("sm")[0].tensor, "ints");
  assert.match(byLayer("sm")[0].message, /input 0 \("ints"\) is int32; expected float32/);
  assert.match(byLayer("two")[0].message, /layer "two" has 2 inputs; Activation takes 1..1/);
  assert.match(byLayer("fc")[0].message, /weights "bias" have 2 values; expected 3/);
  const alien = report.problems.find((p) => p.tensor === "alien");
  assert.ok(alien);
  assert.match(alien.message, /output "alien" is not a tensor of this network/);
  assert.equal(report.problems.length, 5, report.problems.map((p) => p.message).join("\n"));
  assert.throws(() => net.verify(), (e: unknown) => expectProblems(e).problems.length === 5);
});

Deno.test("verify warns about an unused layer without failing, and buildEngine logs it", async () => {
  const net = new Network();
  const x = net.input("x", [N, 4]);
  net.markOutput(x.relu(), "y");
  net.addActivation(x, { type: "sigmoid", name: "unused" });
  const report = net.verify();
  assert.equal(report.problems.length, 0);
  assert.equal(report.warnings.length, 1);
  assert.equal(report.warnings[0].layer, "unused");
  assert.equal(report.warnings[0].tensor, "unused");
  assert.match(
    report.warnings[0].message,
    /layer "unused": its outputs are neither read nor marked/,
  );
  const logger = new MemoryLogger();
  using engine = await buildEngine(net, { device: "cpu", logger });
  assert.ok(
    logger.messages.some((m) => m.severity === "warning" && /layer "unused"/.test(m.message)),
  );
  assert.deepEqual(engine.bindings.map((b) => b.name), ["x", "y"]);
});

Deno.test("verify orders layers after the producers of their inputs", () => {
  const net = new Network();
  const x = net.input("x", [N, 4]);
  const a = net.addActivation(x, { type: "relu", name: "a" });
  const b = net.addActivation(x, { type: "tanh", name: "b" });
  // Rewire a to read b: the definition order (a, b) is no longer an execution order.
  a.setInput(0, b.output(0));
  net.markOutput(a.output(0));
  const report = net.verify();
  assert.deepEqual(report.order.map((l) => l.name), ["b", "a"]);
});
