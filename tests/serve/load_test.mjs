// moert serve under load, bounded in count and time, on 127.0.0.1 only:
// 1. 64 concurrent streaming clients (greedy, the server loaded batch_invariant), a seeded third of them
//    disconnecting after a few chunks: every completed response equals the same request run alone, and
//    /health's active streams return to 0 (the abandoned streams were cancelled and freed);
// 2. 2,000 short requests (streamed, whole, and abandoned) at 16 at a time: the server's RSS after them
//    stays within a bound of its RSS after the first 200.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { loadOpenAI, startServer, waitIdle, run, MODEL_ID } from './harness.mjs';

const OpenAI = loadOpenAI();
const srv = await startServer(['--batch-invariant', '--max-batch', '32']);
const client = new OpenAI({ baseURL: srv.base + '/v1', apiKey: 'x', maxRetries: 0, timeout: 120000 });

let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);

const prompts = ['def quicksort(xs):\n', 'import numpy as np\n\n', 'class Node:\n', 'for i in range(10):\n',
                 '# parse the arguments\n', 'def main():\n    ', 'with open(path) as f:\n', 'try:\n    import json\n'];
const request = (i) => ({ model: MODEL_ID, temperature: 0, max_tokens: 16 + (i % 3) * 4, ignore_eos: true,
                          ...(i % 2 ? { prompt: prompts[i % 8] } : { messages: [{ role: 'user', content: prompts[i % 8] }] }) });
const isChat = (i) => i % 2 === 0;

async function streamOne(i, abortAfter) {
  const req = request(i);
  const s = isChat(i) ? await client.chat.completions.create({ ...req, stream: true })
                      : await client.completions.create({ ...req, stream: true });
  let text = '', chunks = 0;
  for await (const c of s) {
    for (const ch of c.choices) text += (isChat(i) ? ch.delta.content : ch.text) || '';
    if (abortAfter && ++chunks >= abortAfter) { s.controller.abort(); return null; }
  }
  return text;
}

async function alone(i) {
  const req = request(i);
  const r = isChat(i) ? await client.chat.completions.create(req) : await client.completions.create(req);
  return isChat(i) ? r.choices[0].message.content : r.choices[0].text;
}

function rssKiB(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
  return Number(m[1]);
}

const failed = await run([
  ['64 concurrent streams with disconnects equal the requests run alone', async () => {
    const N = 64;
    const plan = Array.from({ length: N }, (_, i) => (rand() < 0.33 ? 1 + Math.floor(rand() * 5) : 0));
    const got = await Promise.all(plan.map((abortAfter, i) => streamOne(i, abortAfter).catch((e) => {
      if (abortAfter) return null;
      throw e;
    })));
    await waitIdle(srv.base);
    const distinct = [...new Set(Array.from({ length: N }, (_, i) => i % 24))];
    const ref = new Map();
    for (const k of distinct) ref.set(k, await alone(k));
    let completed = 0;
    for (let i = 0; i < N; i++) {
      if (plan[i]) continue;
      completed++;
      assert.equal(got[i], ref.get(i % 24), `client ${i}`);
    }
    assert.ok(completed >= 32, `${completed} clients completed`);
    console.log(`  ${completed} completed, ${N - completed} disconnected`);
  }],
  ['2,000 requests: no leaked streams, RSS stable', async () => {
    const total = 2000, width = 16;
    let next = 0, base = 0;
    const t0 = Date.now();
    async function worker() {
      for (;;) {
        const i = next++;
        if (i >= total) return;
        if (i === 200) base = rssKiB(srv.proc.pid);  // warm: every path has run
        const req = { model: MODEL_ID, temperature: 0, max_tokens: 2, prompt: prompts[i % 8] + i };
        if (i % 3 === 0) {
          await client.completions.create(req);
        } else {
          const s = await client.completions.create({ ...req, stream: true });
          for await (const c of s) { if (i % 3 === 2) { s.controller.abort(); break; } }
        }
      }
    }
    await Promise.all(Array.from({ length: width }, worker));
    const h = await waitIdle(srv.base);
    const end = rssKiB(srv.proc.pid);
    console.log(`  ${total} requests in ${Date.now() - t0} ms; RSS ${base} -> ${end} KiB; ${h.requests_total} served`);
    assert.ok(end - base < 24 * 1024, `RSS grew ${end - base} KiB`);
  }],
]);

const { code } = await srv.stop();
assert.equal(code, 0);
process.exit(failed ? 1 : 0);
