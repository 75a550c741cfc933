// An independent GGUF parser (@huggingface/gguf) reading a file Hearth wrote: prints JSON with
// its metadata (arrays as their length) and tensor table, for Hearth's interoperability tests.
// Usage: node gguf_inspect.mjs FILE.gguf
import { gguf } from "@huggingface/gguf";

const file = process.argv[2];
if (!file) { console.error("usage: node gguf_inspect.mjs FILE.gguf"); process.exit(2); }
const { metadata, tensorInfos } = await gguf(file, { allowLocalFile: true });
const plain = {};
for (const [k, v] of Object.entries(metadata)) {
  plain[k] = Array.isArray(v) ? { array_length: v.length } : typeof v === "bigint" ? Number(v) : v;
}
const tensors = tensorInfos.map((t) => ({ name: t.name, shape: t.shape.map(Number), dtype: t.dtype, offset: Number(t.offset) }));
process.stdout.write(JSON.stringify({ metadata: plain, tensors }) + "\n");
