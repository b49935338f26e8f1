/**
 * Unary: one elementwise function, evaluated in double precision and rounded once into the
 * output. erf uses W. J. Cody's rational Chebyshev approximations (CALERF, SPECFUN/netlib,
 * 1969/1990), accurate to about 1e-16 relative in double precision, far inside the 1e-7 the
 * layer promises.
 */
import type { UnaryAttrs, UnaryOp } from "../../dsl/layers/unary.ts";
import { KilnError } from "../../errors.ts";
import type { CpuKernel } from "./_kernel.ts";

// Cody's coefficients: erf on |x| <= 0.46875 (A/B), erfc on 0.46875 < |x| <= 4 (C/D), erfc
// on |x| > 4 in 1/x² (P/Q).
const A = [
  3.1611237438705656,
  113.864154151050156,
  377.485237685302021,
  3209.37758913846947,
  0.185777706184603153,
];
const B = [23.6012909523441209, 244.024637934444173, 1282.61652607737228, 2844.23683343917062];
const C = [
  0.564188496988670089,
  8.88314979438837594,
  66.1191906371416295,
  298.635138197400131,
  881.95222124176909,
  1712.04761263407058,
  2051.07837782607147,
  1230.33935479799725,
  2.15311535474403846e-8,
];
const D = [
  15.7449261107098347,
  117.693950891312499,
  537.181101862009858,
  1621.38957456669019,
  3290.79923573345963,
  4362.61909014324716,
  3439.36767414372164,
  1230.33935480374942,
];
const P = [
  0.305326634961232344,
  0.360344899949804439,
  0.125781726111229246,
  0.0160837851487422766,
  6.58749161529837803e-4,
  0.0163153871373020978,
];
const Q = [
  2.56852019228982242,
  1.87295284992346047,
  0.527905102951428412,
  0.0605183413124413191,
  0.00233520497626869185,
];
/** 1/sqrt(pi). */
const SQRT_PI_INV = 0.56418958354775628695;
/** Beyond this |x|, erfc(x) underflows a double and erf(x) is ±1. */
const ERFC_UNDERFLOW = 26.543;

/** exp(-y²) computed as exp(-r²)·exp(-(y-r)(y+r)) with r = y rounded down to 1/16 (Cody). */
function expNegSquare(y: number): number {
  const r = Math.trunc(y * 16) / 16;
  return Math.exp(-r * r) * Math.exp(-(y - r) * (y + r));
}

/** The error function, 2/√π ∫₀ˣ e^(-t²) dt (W. J. Cody's CALERF, jint = 0). */
export function erf(x: number): number {
  const y = Math.abs(x);
  if (y <= 0.46875) {
    const ysq = y > 1.11e-16 ? y * y : 0;
    let num = A[4] * ysq, den = ysq;
    for (let i = 0; i < 3; i++) {
      num = (num + A[i]) * ysq;
      den = (den + B[i]) * ysq;
    }
    return (x * (num + A[3])) / (den + B[3]);
  }
  let erfc: number;
  if (y <= 4) {
    let num = C[8] * y, den = y;
    for (let i = 0; i < 7; i++) {
      num = (num + C[i]) * y;
      den = (den + D[i]) * y;
    }
    erfc = expNegSquare(y) * ((num + C[7]) / (den + D[7]));
  } else if (y < ERFC_UNDERFLOW) {
    const ysq = 1 / (y * y);
    let num = P[5] * ysq, den = ysq;
    for (let i = 0; i < 4; i++) {
      num = (num + P[i]) * ysq;
      den = (den + Q[i]) * ysq;
    }
    const r = (ysq * (num + P[4])) / (den + Q[4]);
    erfc = expNegSquare(y) * ((SQRT_PI_INV - r) / y);
  } else {
    erfc = y === y ? 0 : NaN;
  }
  const e = 0.5 - erfc + 0.5;
  return x < 0 ? -e : e;
}

/** Round half to even (IEEE roundTiesToEven, CUDA's rintf); keeps the sign of zero. */
export function roundHalfEven(v: number): number {
  const r = Math.round(v); // halves go up, toward +∞
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const FLOAT_FUNCTIONS: Record<Exclude<UnaryOp, "not">, (v: number) => number> = {
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  recip: (v) => 1 / v,
  abs: Math.abs,
  neg: (v) => -v,
  sin: Math.sin,
  cos: Math.cos,
  tan: Math.tan,
  sinh: Math.sinh,
  cosh: Math.cosh,
  asin: Math.asin,
  acos: Math.acos,
  atan: Math.atan,
  asinh: Math.asinh,
  acosh: Math.acosh,
  atanh: Math.atanh,
  ceil: Math.ceil,
  floor: Math.floor,
  round: roundHalfEven,
  erf,
  sign: Math.sign,
};

/** int32 ops, wrapping to 32 bits like integer hardware. */
const INT_FUNCTIONS: Partial<Record<UnaryOp, (v: number) => number>> = {
  abs: (v) => Math.abs(v) | 0,
  neg: (v) => -v | 0,
  sign: Math.sign,
  not: (v) => (v === 0 ? 1 : 0),
};

export const unary: CpuKernel<UnaryAttrs> = ({ layer, attrs, inputs, outputs }) => {
  const x = inputs[0].data, y = outputs[0].data;
  const f = x instanceof Int32Array
    ? INT_FUNCTIONS[attrs.op]
    : FLOAT_FUNCTIONS[attrs.op as Exclude<UnaryOp, "not">];
  if (!f) {
    // Shape inference refuses these combinations; a hand-edited plan could still carry one.
    throw new KilnError(
      "UNSUPPORTED",
      `Unary layer "${layer}": ${attrs.op} is not defined on ${
        x instanceof Int32Array ? "int32" : "float32"
      }`,
      { layer },
    );
  }
  for (let i = 0; i < x.length; i++) y[i] = f(x[i]);
};
