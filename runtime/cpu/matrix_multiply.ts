/**
 * MatrixMultiply on the CPU: one GEMM per matrix of the output. The leading dims broadcast as in
 * numpy, so each output matrix reads the A and B matrices found through broadcast strides (a
 * broadcast operand's stride is 0 and the same matrix is read again). Then bias and epilogue.
 */
import { broadcastStrides } from "./_broadcast.ts";
import { gemm } from "./_gemm.ts";
import { type CpuKernel, f32 } from "./_kernel.ts";
import { applyEpilogue, type EpilogueAttrs } from "./_epilogue.ts";

export interface MatMulAttrs extends EpilogueAttrs {
  transposeA: boolean;
  transposeB: boolean;
}

export const matrixMultiply: CpuKernel<MatMulAttrs> = ({ attrs, weights, inputs, outputs }) => {
  const [A, B] = inputs;
  const a = f32(A), b = f32(B), y = f32(outputs[0]);
  const outDims = outputs[0].dims;
  const rank = outDims.length;
  const m = outDims[rank - 2], n = outDims[rank - 1];
  // The stored (untransposed) shapes; the last dim is the row stride in either case.
  const aCols = A.dims[A.dims.length - 1], aRows = A.dims[A.dims.length - 2];
  const bCols = B.dims[B.dims.length - 1], bRows = B.dims[B.dims.length - 2];
  const k = attrs.transposeA ? aRows : aCols;

  // Leading dims, counted in whole matrices.
  const lead = outDims.slice(0, -2);
  const aStrides = broadcastStrides(A.dims.slice(0, -2), lead);
  const bStrides = broadcastStrides(B.dims.slice(0, -2), lead);
  const count = lead.reduce((p, d) => p * d, 1);
  const index = new Array<number>(lead.length).fill(0);
  for (let mat = 0; mat < count; mat++) {
    let aMat = 0, bMat = 0;
    for (let d = 0; d < lead.length; d++) {
      aMat += index[d] * aStrides[d];
      bMat += index[d] * bStrides[d];
    }
    gemm({
      m,
      n,
      k,
      a,
      aOffset: aMat * aRows * aCols,
      lda: aCols,
      transA: attrs.transposeA,
      b,
      bOffset: bMat * bRows * bCols,
      ldb: bCols,
      transB: attrs.transposeB,
      c: y,
      cOffset: mat * m * n,
      ldc: n,
    });
    // Next multi-index over the leading dims (row-major).
    for (let d = lead.length - 1; d >= 0 && ++index[d] === lead[d]; d--) index[d] = 0;
  }

  const bias = weights.bias as Float32Array | undefined;
  if (bias) {
    for (let row = 0; row < y.length; row += n) {
      for (let j = 0; j < n; j++) y[row + j] += bias[j];
    }
  }
  applyEpilogue(attrs, y, attrs.residual ? inputs[2] : undefined);
};
