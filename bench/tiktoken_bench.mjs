// Encode throughput of tiktoken (npm `tiktoken`: its Rust core as WebAssembly; Moonshot's Python tokenizer
// drives the native build of the same core) on the corpus and procedure of bench/tokenizer_bench.cpp, with a
// tiktoken.model and Moonshot's pattern and special tokens. Run with the package installed outside the
// repository:
//   mkdir -p /tmp/tkgen && cd /tmp/tkgen && npm install tiktoken@1.0.22
//   cp bench/tiktoken_bench.mjs tests/data/tokenizer-tiktoken/moonshot_pattern.mjs /tmp/tkgen/
//   node /tmp/tkgen/tiktoken_bench.mjs [repo_root] [dir with tiktoken.model and tokenizer_config.json]
// and the moert side: moert_tokenizer_bench [repo_root] 1 DIR/tiktoken.model
import fs from "fs";
import path from "path";
import { Tiktoken } from "tiktoken";
import { MOONSHOT_PATTERN } from "./moonshot_pattern.mjs";

const root = process.argv[2] || ".";
const dir = process.argv[3] || path.join(root, "tests/data/tokenizer-tiktoken");
const unique = [];
for (const f of ["deepseek_v3_cases.jsonl", "tiny_coder_cases.jsonl", "v2style_cases.jsonl", "gpt2style_cases.jsonl"])
  for (const line of fs.readFileSync(path.join(root, "tests/data/tokenizer-corpus", f), "utf8").split("\n"))
    if (line) unique.push(JSON.parse(line).text);
const docs = [];
let bytes = 0;
for (let r = 0; r < 11; ++r) for (const s of unique) { docs.push(s); bytes += Buffer.byteLength(s, "utf8"); }

const t0 = process.hrtime.bigint();
const model = fs.readFileSync(path.join(dir, "tiktoken.model"), "utf8");
const cfg = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
const base = model.split("\n").filter((l) => l).length;
const specials = {};
for (let i = 0; i < 256; i++) specials[cfg.added_tokens_decoder?.[String(base + i)]?.content ?? `<|reserved_token_${base + i}|>`] = base + i;
const enc = new Tiktoken(model, specials, MOONSHOT_PATTERN);
const t1 = process.hrtime.bigint();
const secs = (a, b) => Number(b - a) / 1e9;
let best = Infinity, tokens = 0;
for (let rep = 0; rep < 3; ++rep) {
  const a = process.hrtime.bigint();
  tokens = 0;
  for (const d of docs) tokens += enc.encode(d, "all").length;
  best = Math.min(best, secs(a, process.hrtime.bigint()));
}
console.log(`tiktoken (wasm) ${dir}: load ${(secs(t0, t1) * 1e3).toFixed(0)} ms`);
console.log(`corpus: ${docs.length} documents, ${(bytes / 1e6).toFixed(2)} MB, ${tokens} tokens`);
console.log(`encode, one document at a time, best of 3: ${(bytes / 1e6 / best).toFixed(1)} MB/s (${best.toFixed(2)} s)`);
enc.free();
