/**
 * Histograms of |x| and the thresholds the calibrators pick from them.
 *
 * A histogram has a fixed 2048 bins (TensorRT's count) over [0, range]. The range starts at the
 * first batch's max |x| and, when a later batch goes beyond it, doubles as often as needed; a
 * doubling merges bins pairwise, so no count is ever re-estimated (the price: up to half the bins
 * may lie above the final max). The last bin is closed: a value equal to the range counts there,
 * and stays below the old range's edge after a doubling. The exact max |x| is tracked beside.
 */

export const HISTOGRAM_BINS = 2048;
/** Quantized levels of the positive half of INT8 ([0, 127] plus the zero bin: TensorRT's 128). */
export const ENTROPY_LEVELS = 128;

export class AbsHistogram {
  readonly counts = new Float64Array(HISTOGRAM_BINS);
  /** Upper end of the last bin. 0 until a non-zero value has been seen. */
  range = 0;
  /** The exact max |x| seen. */
  max = 0;
  total = 0;

  /**
   * Adds |x| for every element. Returns the index of the first non-finite element (nothing is
   * added then), or -1.
   */
  add(values: ArrayLike<number>): number {
    let m = 0;
    for (let i = 0; i < values.length; i++) {
      const a = Math.abs(values[i]);
      if (!(a <= Number.MAX_VALUE)) return i;
      if (a > m) m = a;
    }
    if (m > this.max) this.max = m;
    if (m > this.range) this.#grow(m);
    const n = HISTOGRAM_BINS, c = this.counts;
    if (this.range === 0) {
      c[0] += values.length;
    } else {
      const k = n / this.range;
      for (let i = 0; i < values.length; i++) {
        const b = Math.floor(Math.abs(values[i]) * k);
        c[b < n ? b : n - 1]++;
      }
    }
    this.total += values.length;
    return -1;
  }

  #grow(m: number): void {
    if (this.range === 0) {
      // Only zeros so far: they stay in bin 0 whatever the range.
      this.range = m;
      return;
    }
    const c = this.counts, n = HISTOGRAM_BINS;
    while (this.range < m) {
      for (let i = 0; i < n / 2; i++) c[i] = c[2 * i] + c[2 * i + 1];
      c.fill(0, n / 2);
      this.range *= 2;
    }
  }

  /** Bin edges, HISTOGRAM_BINS + 1 of them. */
  edges(): number[] {
    const w = this.range / HISTOGRAM_BINS;
    return Array.from({ length: HISTOGRAM_BINS + 1 }, (_, i) => i * w);
  }
}

/**
 * The p-quantile (0 < q ≤ 1) of |x| from the histogram: the upper edge of the first bin where the
 * cumulative count reaches q · total, never above the exact max.
 */
export function histogramQuantile(h: AbsHistogram, q: number): number {
  if (h.total === 0 || h.range === 0) return h.max;
  const target = q * h.total, w = h.range / HISTOGRAM_BINS;
  let cum = 0;
  for (let b = 0; b < HISTOGRAM_BINS; b++) {
    cum += h.counts[b];
    if (cum >= target) return Math.min((b + 1) * w, h.max);
  }
  return h.max;
}

export interface EntropySearch {
  threshold: number;
  /** KL divergence for keeping i bins, i = ENTROPY_LEVELS … HISTOGRAM_BINS (Infinity: Q misses mass of P). */
  kl: number[];
  /** The threshold each `kl` entry stands for: i · bin width. */
  klThresholds: number[];
}

/**
 * TensorRT's entropy calibration (Migacz, "8-bit Inference with TensorRT", GTC 2017), without
 * smoothing. First the zero bin's count is replaced by the next bin's, as NVIDIA's
 * pytorch-quantization does (TensorRT's own code is closed): the exact zeros of a ReLU's output
 * would otherwise dominate P and pull the threshold down. Then for every i in [128, 2048]:
 *  - P = bins[0 … i−1] with the outliers bins[i …] added to bin i−1;
 *  - Q = bins[0 … i−1] (outliers not added) merged into 128 levels (i / 128 bins each, the last
 *    level taking the remainder), each level's count spread evenly over the bins of the level
 *    where P is non-zero (bins where P is zero stay zero in Q);
 *  - KL(P‖Q) = Σ P·ln(P/Q) over P > 0 after normalizing both; Infinity where Q = 0 < P.
 * The threshold is i·width for the i of least divergence (the last one on ties, as
 * pytorch-quantization): everything up to the upper edge of the last kept bin is represented, the
 * rest saturates. A histogram with nothing outside the zero bin keeps its whole range.
 */
export function entropyThreshold(h: AbsHistogram): EntropySearch {
  const n = HISTOGRAM_BINS, L = ENTROPY_LEVELS;
  const w = h.range / n;
  const kl: number[] = [], klThresholds: number[] = [];
  if (h.range === 0) return { threshold: 0, kl, klThresholds };
  const bins = Float64Array.from(h.counts);
  bins[0] = bins[1];
  if (bins.every((c) => c === 0)) return { threshold: h.max, kl, klThresholds };
  // Suffix sums give each candidate's outlier count in O(1).
  const suffix = new Float64Array(n + 1);
  for (let b = n - 1; b >= 0; b--) suffix[b] = suffix[b + 1] + bins[b];
  const total = suffix[0];
  // KL(P‖Q) = (1/ΣP) Σ_levels (Σ P ln P − ΣP · ln q_level) − ln ΣP + ln ΣQ, q_level being the
  // level's value on each of its non-empty bins. For all i with the same bins per level
  // (i in [128m, 128m + 127]) the first 127 levels are the same: they are summed once per m,
  // and only the last level, whose last bin carries the outliers, once per i.
  let best = Infinity, bestI = n;
  for (let m = 1; m * L <= n; m++) {
    let full = 0;
    for (let level = 0; level < L - 1; level++) {
      let sum = 0, nonzero = 0, pLogP = 0;
      for (let b = level * m; b < (level + 1) * m; b++) {
        const c = bins[b];
        if (c !== 0) {
          sum += c;
          nonzero++;
          pLogP += c * Math.log(c);
        }
      }
      if (sum !== 0) full += pLogP - sum * Math.log(sum / nonzero);
    }
    for (let i = m * L; i < (m + 1) * L && i <= n; i++) {
      let sum = 0, nonzero = 0, pLogP = 0;
      for (let b = (L - 1) * m; b < i - 1; b++) {
        const c = bins[b];
        if (c !== 0) {
          sum += c;
          nonzero++;
          pLogP += c * Math.log(c);
        }
      }
      const last = suffix[i - 1]; // bins[i − 1] and the outliers
      const qLevel = sum + bins[i - 1], pLevel = sum + last;
      if (last !== 0) {
        nonzero++;
        pLogP += last * Math.log(last);
      }
      let d: number;
      if (pLevel !== 0 && qLevel === 0) d = Infinity;
      else {
        const lastLevel = pLevel !== 0 ? pLogP - pLevel * Math.log(qLevel / nonzero) : 0;
        d = (full + lastLevel) / total - Math.log(total) + Math.log(total - suffix[i]);
      }
      kl.push(d);
      klThresholds.push(i * w);
      if (d <= best) {
        best = d;
        bestI = i;
      }
    }
  }
  return { threshold: bestI * w, kl, klThresholds };
}
