import assert from "node:assert/strict";
import { KilnError } from "../../errors.ts";
import { imageGridFigure } from "../../viz/images.ts";
import { rng } from "../_util.ts";

interface Heatmap {
  type: string;
  z: number[][];
  xaxis: string;
  yaxis: string;
}

Deno.test("imageGridFigure lays images out row-major, one captioned heatmap per subplot", () => {
  const r = rng(11);
  const images = Array.from({ length: 7 }, (_, i) => {
    const width = 3 + (i % 2), height = 2 + (i % 3);
    const pixels = Array.from({ length: width * height }, () => Math.round(255 * r()));
    return { width, height, pixels, caption: `digit ${i}` };
  });
  const fig = imageGridFigure(images, { columns: 4, title: "digits" });
  assert.equal(fig.data.length, 7);
  const grid = fig.layout.grid as { rows: number; columns: number; pattern: string };
  assert.deepEqual([grid.rows, grid.columns, grid.pattern], [2, 4, "independent"]);
  images.forEach((img, i) => {
    const t = fig.data[i] as unknown as Heatmap;
    assert.equal(t.type, "heatmap");
    const suffix = i === 0 ? "" : `${i + 1}`;
    assert.equal(t.xaxis, `x${suffix}`);
    assert.equal(t.yaxis, `y${suffix}`);
    // z[row][col] is pixels[row * width + col]: the image as stored, row 0 first.
    assert.equal(t.z.length, img.height);
    for (let row = 0; row < img.height; row++) {
      assert.deepEqual(t.z[row], img.pixels.slice(row * img.width, (row + 1) * img.width));
    }
    const y = fig.layout[`yaxis${suffix}`] as { autorange: string; scaleanchor: string };
    assert.equal(y.autorange, "reversed", "row 0 drawn at the top");
    assert.equal(y.scaleanchor, `x${suffix}`, "square pixels");
  });
  const notes = fig.layout.annotations as { text: string; xref: string }[];
  assert.deepEqual(notes.map((a) => a.text), images.map((img) => img.caption));
  assert.equal(notes[3].xref, "x4 domain");
  assert.ok(JSON.stringify(fig).length > 100, "plain JSON");
});

Deno.test("imageGridFigure refuses images whose pixel count does not match their size", () => {
  assert.throws(
    () => imageGridFigure([{ width: 28, height: 28, pixels: new Float32Array(783) }]),
    (e) => e instanceof KilnError && /28x28 needs 784 pixels, got 783/.test(e.message),
  );
  assert.throws(() => imageGridFigure([]), KilnError);
  assert.throws(
    () => imageGridFigure([{ width: 1, height: 1, pixels: [0] }], { columns: 0 }),
    /columns must be a positive integer/,
  );
});
