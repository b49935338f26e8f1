/** Per-layer timings of the runs made while enabled, reported under the fused layer names. */
export interface LayerTime {
  layer: string;
  kind: string;
  /** The source layers a fused layer stands for. */
  sources: string[];
  /** Mean milliseconds per run. */
  ms: number;
}

const MAX_NAME = 72;

export class Profiler {
  enabled = false;
  #sums: number[] = [];
  #runs = 0;

  constructor(readonly layers: readonly { name: string; kind: string; sources: string[] }[]) {}

  /** Called by the context after a profiled run. */
  record(layerMs: readonly number[]): void {
    if (this.#sums.length !== layerMs.length) this.#sums = new Array(layerMs.length).fill(0);
    layerMs.forEach((ms, i) => (this.#sums[i] += ms));
    this.#runs++;
  }

  get runs(): number {
    return this.#runs;
  }

  /** Mean time per layer over the recorded runs, in execution order. */
  report(): LayerTime[] {
    if (this.#runs === 0) return [];
    return this.layers.map((l, i) => ({
      layer: l.name,
      kind: l.kind,
      sources: l.sources,
      ms: this.#sums[i] / this.#runs,
    }));
  }

  reset(): void {
    this.#sums = [];
    this.#runs = 0;
  }

  /** A text table sorted by time: layer, ms, % of the total (report() has the full names). */
  table(): string {
    const rows = this.report().sort((a, b) => b.ms - a.ms);
    const total = rows.reduce((a, r) => a + r.ms, 0);
    // Fused layers carry every source name; past a terminal's width the name is cut in the middle.
    const name = (s: string) =>
      s.length <= MAX_NAME
        ? s
        : `${s.slice(0, MAX_NAME / 2 - 2)} … ${s.slice(-(MAX_NAME / 2 - 1))}`;
    const w = Math.max(5, ...rows.map((r) => name(r.layer).length));
    const lines = [`${"layer".padEnd(w)}  ${"ms".padStart(9)}  ${"%".padStart(6)}`];
    for (const r of rows) {
      lines.push(
        `${name(r.layer).padEnd(w)}  ${r.ms.toFixed(4).padStart(9)}  ${
          (total ? (100 * r.ms) / total : 0).toFixed(1).padStart(6)
        }`,
      );
    }
    lines.push(`${"total".padEnd(w)}  ${total.toFixed(4).padStart(9)}  ${"100.0".padStart(6)}`);
    return lines.join("\n");
  }
}
