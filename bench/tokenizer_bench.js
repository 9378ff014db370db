// Encode throughput of Hugging Face `tokenizers` (npm, native Rust inside) on the corpus and procedure of
// bench/tokenizer_bench.cpp. Run with the package installed outside the repository:
//   mkdir -p /tmp/tokgen && cd /tmp/tokgen && npm install tokenizers@0.23.2
//   NODE_PATH=/tmp/tokgen/node_modules node bench/tokenizer_bench.js [repo_root]
'use strict';
const fs = require('fs');
const path = require('path');
const {Tokenizer} = require('tokenizers');

(async () => {
  const root = process.argv[2] || path.resolve(__dirname, '..');
  const unique = [];
  for (const f of ['deepseek_v3_cases.jsonl', 'tiny_coder_cases.jsonl', 'v2style_cases.jsonl', 'gpt2style_cases.jsonl']) {
    for (const line of fs.readFileSync(path.join(root, 'tests/data/tokenizer-corpus', f), 'utf8').split('\n'))
      if (line) unique.push(JSON.parse(line).text);
  }
  const docs = [];
  let bytes = 0;
  for (let r = 0; r < 11; ++r) for (const s of unique) { docs.push(s); bytes += Buffer.byteLength(s, 'utf8'); }

  const t0 = process.hrtime.bigint();
  const tok = await Tokenizer.fromFile(path.join(root, 'tests/data/tokenizer-deepseek-v3/tokenizer.json'));
  const t1 = process.hrtime.bigint();
  const secs = (a, b) => Number(b - a) / 1e9;

  // One document at a time, awaited (single-threaded encode, like the C++ 1-thread figure).
  async function sequential() {
    let tokens = 0;
    const a = process.hrtime.bigint();
    for (const d of docs) tokens += (await tok.encode(d, null, {addSpecialTokens: false})).getIds().length;
    return [secs(a, process.hrtime.bigint()), tokens];
  }
  // encodeBatch in batches of 256 documents (Rayon threads over all cores).
  async function batched() {
    let tokens = 0;
    const a = process.hrtime.bigint();
    for (let i = 0; i < docs.length; i += 256) {
      const out = await tok.encodeBatch(docs.slice(i, i + 256), {addSpecialTokens: false});
      for (const e of out) tokens += e.getIds().length;
    }
    return [secs(a, process.hrtime.bigint()), tokens];
  }
  const [cold, tokens] = await sequential();
  let best = 1e30;
  for (let r = 0; r < 3; ++r) best = Math.min(best, (await sequential())[0]);
  let bestBatch = 1e30;
  for (let r = 0; r < 3; ++r) bestBatch = Math.min(bestBatch, (await batched())[0]);
  console.log(`HF tokenizers (npm ${require('tokenizers/package.json').version}): load ${(secs(t0, t1) * 1e3).toFixed(0)} ms`);
  console.log(`corpus: ${docs.length} documents, ${(bytes / 1e6).toFixed(2)} MB, ${tokens} tokens`);
  console.log(`encode, sequential, first run: ${(bytes / 1e6 / cold).toFixed(1)} MB/s`);
  console.log(`encode, sequential, best of 3: ${(bytes / 1e6 / best).toFixed(1)} MB/s (${best.toFixed(2)} s)`);
  console.log(`encodeBatch (all cores), best of 3: ${(bytes / 1e6 / bestBatch).toFixed(1)} MB/s`);
})().catch((e) => { console.error(e); process.exit(1); });
