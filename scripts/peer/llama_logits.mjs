// llama.cpp (through node-llama-cpp's prebuilt CPU build) as a reference for Hearth's GGUF tests:
// loads a GGUF model (and optionally a GGUF LoRA), evaluates token ids, and prints JSON with the
// logits llama.cpp computes and its greedy continuation.
//
// Usage: node llama_logits.mjs --model M.gguf [--lora A.gguf] --tokens 1,403,407 [--all-positions]
//                              [--greedy N] [--tokenize TEXT]
// Output (one JSON object on stdout):
//   {"prompt_logits": [[V floats] per position asked], "greedy": [ids],
//    "greedy_logits": [[V floats] per greedy step], "greedy_text": "...", "tokenized": [ids of TEXT]}
// prompt_logits holds the last position only, unless --all-positions. Greedy picks the largest
// logit (lowest id on ties), so both engines follow the same rule.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const args = process.argv.slice(2);
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const modelPath = opt("--model");
if (!modelPath) { console.error("usage: node llama_logits.mjs --model M.gguf [--lora A.gguf] --tokens 1,2,3 [--greedy N]"); process.exit(2); }
let tokens = (opt("--tokens") ?? "").split(",").filter((s) => s !== "").map(Number);
const greedySteps = Number(opt("--greedy") ?? 0);
const allPositions = args.includes("--all-positions");

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath, useMmap: true });
const lora = opt("--lora");
const context = await model.createContext({ contextSize: Math.max(64, tokens.length + greedySteps + 8),
                                            batchSize: 512, threads: 1, ...(lora ? { lora: { adapters: [{ filePath: lora, scale: 1 }] } } : {}) });
const seq = context.getSequence();

// A dense logits array from node-llama-cpp's Map (token -> logit).
const dense = (map) => {
  let n = 0;
  for (const t of map.keys()) n = Math.max(n, t + 1);
  const out = new Array(n).fill(-Infinity);
  for (const [t, v] of map) out[t] = v;
  return out;
};
const argmax = (arr) => { let best = 0; for (let i = 1; i < arr.length; ++i) if (arr[i] > arr[best]) best = i; return best; };

const result = { prompt_logits: [], greedy: [], greedy_logits: [] };
if (opt("--tokenize") !== undefined) result.tokenized = model.tokenize(opt("--tokenize"), false);
if (tokens.length > 0) {
  const input = tokens.map((t, i) => (allPositions || i === tokens.length - 1 ? [t, { generateNext: { logits: true } }] : t));
  const out = await seq.controlledEvaluate(input);
  for (let i = 0; i < tokens.length; ++i) if (out[i]?.next?.logits) result.prompt_logits.push(dense(out[i].next.logits));
  let last = result.prompt_logits[result.prompt_logits.length - 1];
  for (let s = 0; s < greedySteps; ++s) {
    const next = argmax(last);
    result.greedy.push(next);
    const o = await seq.controlledEvaluate([[next, { generateNext: { logits: true } }]]);
    last = dense(o[0].next.logits);
    result.greedy_logits.push(last);
  }
  result.greedy_text = model.detokenize(result.greedy);
}
process.stdout.write(JSON.stringify(result) + "\n");
await context.dispose();
await model.dispose();
