/**
 * Images for the MNIST examples: binary PGM files (TensorRT's sample digits) and gzipped IDX
 * files (the MNIST database), read with nothing but Deno and the web platform.
 */
import { KilnError } from "../mod.ts";

export interface GrayImage {
  width: number;
  height: number;
  /** 8-bit pixels, row-major. */
  pixels: Uint8Array;
}

/** Reads a binary (P5) PGM with 8-bit samples. */
export async function readPgm(file: string): Promise<GrayImage> {
  const bytes = await readBytes(file);
  // Header: "P5", width, height, maxval as whitespace-separated decimals (with # comments),
  // then exactly one whitespace byte before the pixels.
  let pos = 0;
  const isSpace = (c: number) => c === 0x20 || (c >= 0x09 && c <= 0x0d);
  const field = (): string => {
    for (;;) {
      while (pos < bytes.length && isSpace(bytes[pos])) pos++;
      if (bytes[pos] !== 0x23) break; // "#": a comment to the end of the line
      while (pos < bytes.length && bytes[pos] !== 0x0a) pos++;
    }
    const start = pos;
    while (pos < bytes.length && !isSpace(bytes[pos])) pos++;
    return String.fromCharCode(...bytes.subarray(start, Math.min(pos, start + 16)));
  };
  const magic = field();
  const [width, height, maxval] = [field(), field(), field()].map((s) =>
    /^\d{1,6}$/.test(s) ? Number(s) : NaN
  );
  pos++;
  const bad = (why: string): never => {
    throw new KilnError("PARSE_ERROR", `${file}: ${why}`, {
      file,
      offset: Math.min(pos, bytes.length),
    });
  };
  if (magic !== "P5") bad(`not a binary PGM (starts with ${JSON.stringify(magic)}, not "P5")`);
  if (!(width > 0 && height > 0)) bad("width and height must be positive integers");
  if (!(maxval > 0 && maxval < 256)) bad(`maxval ${maxval} is not an 8-bit PGM (1..255)`);
  if (bytes.length - pos < width * height) {
    bad(`${width}x${height} pixels need ${width * height} bytes; ${bytes.length - pos} remain`);
  }
  return { width, height, pixels: bytes.slice(pos, pos + width * height) };
}

/**
 * Reads a gzipped IDX file (the MNIST database's format): a big-endian magic whose third byte
 * is the element type (0x08 = uint8) and fourth the rank, then the dims as big-endian uint32,
 * then the data.
 */
export async function readIdxGz(file: string): Promise<{ dims: number[]; data: Uint8Array }> {
  const compressed = await readBytes(file);
  let bytes: Uint8Array;
  try {
    const stream = new Blob([compressed]).stream().pipeThrough(new DecompressionStream("gzip"));
    bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (e) {
    throw new KilnError("PARSE_ERROR", `${file}: not a gzip file: ${(e as Error).message}`, {
      file,
      cause: e,
    });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (why: string, offset: number): never => {
    throw new KilnError("PARSE_ERROR", `${file} (decompressed): ${why}`, { file, offset });
  };
  if (bytes.length < 4 || view.getUint16(0) !== 0 || bytes[2] !== 0x08) {
    bad("not an IDX file of uint8 (magic 0x00 0x00 0x08 <rank>)", 0);
  }
  const rank = bytes[3];
  if (bytes.length < 4 + 4 * rank) bad(`the header of ${rank} dims is truncated`, 4);
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i));
  const count = dims.reduce((a, d) => a * d, 1);
  const start = 4 + 4 * rank;
  if (bytes.length - start !== count) {
    bad(
      `dims [${dims.join(", ")}] need ${count} bytes of data; ${bytes.length - start} follow`,
      start,
    );
  }
  return { dims, data: bytes.subarray(start) };
}

/**
 * An image as ASCII art, one string per row, densest characters for the most ink (TensorRT's
 * samples print their digits this way). `inkIsDark`: dark digit on white (the pgm files).
 */
export function asciiArt(image: GrayImage, inkIsDark: boolean): string[] {
  const shades = " .:-=+*#%@";
  const rows: string[] = [];
  for (let y = 0; y < image.height; y++) {
    let row = "";
    for (let x = 0; x < image.width; x++) {
      const v = image.pixels[y * image.width + x];
      row += shades[Math.floor((inkIsDark ? 255 - v : v) / 25.6)];
    }
    rows.push(row);
  }
  return rows;
}

async function readBytes(file: string): Promise<Uint8Array<ArrayBuffer>> {
  try {
    return await Deno.readFile(file);
  } catch (e) {
    throw new KilnError("IO_ERROR", `cannot read ${file}: ${(e as Error).message}`, {
      file,
      cause: e,
    });
  }
}
