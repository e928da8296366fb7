// Open OME-Zarr images with Viv's loaders (@vivjs/loaders) in Node and read a tile of the
// finest and of the coarsest level; print what was read as JSON for the Python side.
// Usage: node viv_read.mjs '<json: {"images": [url, ...]}>'
import { createHash } from "node:crypto";
import { loadOmeZarr } from "@vivjs/loaders";

function digest(typed) {
  return createHash("sha256").update(Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength)).digest("hex");
}

const request = JSON.parse(process.argv[2]);
const images = [];
for (const url of request.images) {
  const { data, metadata } = await loadOmeZarr(url, { type: "multiscales" });
  const levels = [];
  for (const source of [data[0], data[data.length - 1]]) {
    const selection = Object.fromEntries(source.labels.filter((l) => l !== "x" && l !== "y").map((l) => [l, 0]));
    const tile = await source.getTile({ x: 0, y: 0, selection });
    levels.push({
      shape: source.shape,
      labels: source.labels,
      tileSize: source.tileSize,
      dtype: source.dtype,
      tile: { width: tile.width, height: tile.height, sha256: digest(tile.data) },
    });
  }
  images.push({ url, levels: data.length, axes: metadata.multiscales[0].axes, read: levels });
}
console.log(JSON.stringify({ images }));
