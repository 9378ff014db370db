// The HTTP side of bench/serve_bench.sh: CLIENTS concurrent clients against a running moert serve, each
// sending R streamed /v1/completions one after another (greedy, max_tokens, ignore_eos) with Node's
// fetch; the time to first token is to the first SSE chunk carrying text. Prints one JSON line.
// usage: node serve_bench.mjs BASE_URL MODEL_ID CLIENTS REQUESTS_PER_CLIENT MAX_TOKENS
const [base, model, clients, perClient, maxTokens] = process.argv.slice(2);
const prompts = ['def quicksort(xs):\n', 'import numpy as np\n\n', 'class Node:\n', 'for i in range(10):\n',
                 '# parse the arguments\n', 'def main():\n    ', 'with open(path) as f:\n', 'try:\n    import json\n'];
let ttft = 0, done = 0;
async function one(prompt) {
  const start = performance.now();
  const r = await fetch(base + '/v1/completions', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model, prompt, max_tokens: Number(maxTokens), temperature: 0, ignore_eos: true, stream: true }),
  });
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  const dec = new TextDecoder();
  let buf = '', first = true;
  for await (const chunk of r.body) {
    buf += dec.decode(chunk, { stream: true });
    let at;
    while ((at = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, at);
      buf = buf.slice(at + 2);
      if (first && ev.startsWith('data: {') && JSON.parse(ev.slice(6)).choices[0]?.text) {
        ttft += performance.now() - start;
        first = false;
      }
    }
  }
  done++;
}
const t0 = performance.now();
await Promise.all(Array.from({ length: Number(clients) }, async (_, c) => {
  for (let r = 0; r < Number(perClient); r++) await one(prompts[(c + r) % 8]);
}));
const wall = (performance.now() - t0) / 1000;
console.log(JSON.stringify({ clients: Number(clients), requests: done, wall_s: +wall.toFixed(3),
                             rps: +(done / wall).toFixed(2), ttft_ms: +(ttft / done).toFixed(2) }));
