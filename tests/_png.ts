/**
 * A small PNG decoder for tests that look at screenshots: 8-bit greyscale, grey+alpha, RGB and
 * RGBA, not interlaced (what Chromium writes). The zlib stream of the IDAT chunks is inflated
 * with the web platform's DecompressionStream("deflate"); the five row filters are undone here.
 */

export interface RgbaImage {
  width: number;
  height: number;
  /** width * height * 4 bytes, RGBA, row-major. */
  rgba: Uint8Array;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** Channels per colour type (0 grey, 2 RGB, 4 grey+alpha, 6 RGBA). */
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

async function inflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as BlobPart]).stream()
    .pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Decodes a PNG; throws an Error saying what is not supported or malformed. */
export async function decodePng(bytes: Uint8Array): Promise<RgbaImage> {
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) {
    throw new Error("not a PNG (bad signature)");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let width = 0, height = 0, channels = 0;
  const idat: Uint8Array[] = [];
  let pos = 8, ended = false;
  while (pos + 12 <= bytes.length && !ended) {
    const length = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    const body = bytes.subarray(pos + 8, pos + 8 + length);
    if (body.length !== length) throw new Error(`chunk ${type} is truncated`);
    if (type === "IHDR") {
      width = view.getUint32(pos + 8);
      height = view.getUint32(pos + 12);
      const [depth, colour, , , interlace] = body.subarray(8, 13);
      channels = CHANNELS[colour] ?? 0;
      if (depth !== 8 || !channels || interlace !== 0) {
        throw new Error(
          `unsupported PNG: bit depth ${depth}, colour type ${colour}, interlace ${interlace}`,
        );
      }
    } else if (type === "IDAT") {
      idat.push(body);
    } else if (type === "IEND") {
      ended = true;
    }
    pos += 12 + length;
  }
  if (!width || !height || !idat.length || !ended) {
    throw new Error("PNG without IHDR, IDAT or IEND");
  }
  const zlib = new Uint8Array(idat.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of idat) {
    zlib.set(c, at);
    at += c.length;
  }
  const raw = await inflate(zlib);
  const stride = width * channels;
  if (raw.length !== height * (stride + 1)) {
    throw new Error(`inflated ${raw.length} bytes; ${height * (stride + 1)} expected`);
  }
  // Undo the filters in place, row by row: each row starts with its filter type.
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = px.subarray(y * stride, (y + 1) * stride);
    const up = y > 0 ? px.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? row[x - channels] : 0;
      const b = up[x];
      const c = x >= channels ? up[x - channels] : 0;
      const predictor = filter === 0
        ? 0
        : filter === 1
        ? a
        : filter === 2
        ? b
        : filter === 3
        ? (a + b) >> 1
        : filter === 4
        ? paeth(a, b, c)
        : NaN;
      if (Number.isNaN(predictor)) throw new Error(`row ${y}: unknown filter type ${filter}`);
      row[x] = (src[x] + predictor) & 0xff;
    }
  }
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    const p = px.subarray(i * channels, (i + 1) * channels);
    const [r, g, b, alpha] = channels >= 3
      ? [p[0], p[1], p[2], channels === 4 ? p[3] : 255]
      : [p[0], p[0], p[0], channels === 2 ? p[1] : 255];
    rgba.set([r, g, b, alpha], i * 4);
  }
  return { width, height, rgba };
}

/** How the pixels of a screenshot are spread: distinct colours, non-white share, per-colour counts. */
export function colourStats(img: RgbaImage): {
  distinct: number;
  nonWhiteFraction: number;
  count: (hex: string, tolerance?: number) => number;
} {
  const seen = new Set<number>();
  let nonWhite = 0;
  const n = img.width * img.height;
  for (let i = 0; i < n; i++) {
    const [r, g, b] = img.rgba.subarray(i * 4, i * 4 + 3);
    seen.add((r << 16) | (g << 8) | b);
    if (r < 250 || g < 250 || b < 250) nonWhite++;
  }
  return {
    distinct: seen.size,
    nonWhiteFraction: nonWhite / n,
    /** Pixels within `tolerance` per channel of the colour `#rrggbb`. */
    count(hex, tolerance = 2) {
      const want = [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16));
      let k = 0;
      for (let i = 0; i < n; i++) {
        if (want.every((v, c) => Math.abs(img.rgba[i * 4 + c] - v) <= tolerance)) k++;
      }
      return k;
    },
  };
}
