// Read OME-Zarr arrays over HTTP with zarrita.js; print checksums as JSON for the Python side.
// Usage: node zarrita_read.mjs '<json: {"group": url, "arrays": [url, ...]}>'
import { createHash } from "node:crypto";
import * as zarr from "zarrita";

function digest(typed) {
  return createHash("sha256").update(Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength)).digest("hex");
}

const request = JSON.parse(process.argv[2]);
const group = await zarr.open(new zarr.FetchStore(request.group), { kind: "group" });
const result = { group: { attrs: group.attrs }, arrays: [] };
for (const url of request.arrays) {
  const array = await zarr.open(new zarr.FetchStore(url), { kind: "array" });
  const whole = await zarr.get(array);
  const first = await array.getChunk(array.shape.map(() => 0));
  result.arrays.push({
    url,
    shape: array.shape,
    chunks: array.chunks,
    dtype: array.dtype,
    sha256: digest(whole.data),
    first_chunk: { shape: first.shape, sha256: digest(first.data) },
  });
}
console.log(JSON.stringify(result));
