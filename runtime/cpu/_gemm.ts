/**
 * C[M×N] (+)= A[M×K] · B[K×N], row-major with leading dimensions, optionally transposed
 * operands. Blocked over K and N so the inner loop streams contiguous rows of B and C.
 */
export interface GemmArgs {
  m: number;
  n: number;
  k: number;
  a: Float32Array;
  aOffset?: number;
  lda: number;
  transA?: boolean;
  b: Float32Array;
  bOffset?: number;
  ldb: number;
  transB?: boolean;
  c: Float32Array;
  cOffset?: number;
  ldc: number;
  /** Add into C instead of overwriting it. */
  accumulate?: boolean;
}

const KB = 128;
const NB = 256;

export function gemm(g: GemmArgs): void {
  const { m, n, k, lda, ldb, ldc } = g;
  const a = g.a, c = g.c;
  const ao = g.aOffset ?? 0, co = g.cOffset ?? 0;
  // Bring B to row-major K×N once if it is transposed, so the inner loop is contiguous.
  let b = g.b, bo = g.bOffset ?? 0, ldB = ldb;
  if (g.transB) {
    const bt = new Float32Array(k * n);
    for (let j = 0; j < n; j++) {
      const row = bo + j * ldb;
      for (let p = 0; p < k; p++) bt[p * n + j] = b[row + p];
    }
    b = bt;
    bo = 0;
    ldB = n;
  }
  if (!g.accumulate) {
    for (let i = 0; i < m; i++) c.fill(0, co + i * ldc, co + i * ldc + n);
  }
  const transA = !!g.transA;
  for (let p0 = 0; p0 < k; p0 += KB) {
    const p1 = Math.min(k, p0 + KB);
    for (let j0 = 0; j0 < n; j0 += NB) {
      const j1 = Math.min(n, j0 + NB);
      for (let i = 0; i < m; i++) {
        const crow = co + i * ldc;
        for (let p = p0; p < p1; p++) {
          const av = transA ? a[ao + p * lda + i] : a[ao + i * lda + p];
          if (av === 0) continue;
          const brow = bo + p * ldB;
          for (let j = j0; j < j1; j++) c[crow + j] += av * b[brow + j];
        }
      }
    }
  }
}
