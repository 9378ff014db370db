// moert serve driven by the official `openai` npm client (and raw fetch for malformed requests): chat
// and completions, streamed and not, stop strings, seeds, usage against the tokenizer, content parts,
// R1 reasoning_content, every error status, the API key, the stream bound, and a graceful SIGTERM.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  CLI, loadOpenAI, startServer, waitIdle, post, tokenCount, chatTemplate, tmpDir, run, health, MODEL_DIR, MODEL_ID,
} from './harness.mjs';

const OpenAI = loadOpenAI();
const srv = await startServer(['--max-body-bytes', '65536']);
const client = new OpenAI({ baseURL: srv.base + '/v1', apiKey: 'unused', maxRetries: 0 });
const greedy = { model: MODEL_ID, temperature: 0 };
const msgs = [{ role: 'user', content: 'Write a function that reverses a list.' }];

async function collectChat(stream) {
  let content = '', usage = null, finish = null, roles = 0;
  for await (const c of stream) {
    if (c.usage) usage = c.usage;
    for (const ch of c.choices) {
      if (ch.delta.role) roles++;
      content += ch.delta.content || '';
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  return { content, usage, finish, roles };
}

async function collectText(stream) {
  let text = '', usage = null, finish = null;
  for await (const c of stream) {
    if (c.usage) usage = c.usage;
    for (const ch of c.choices) {
      text += ch.text;
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  return { text, usage, finish };
}

const failed = await run([
  ['models list', async () => {
    const list = await client.models.list();
    assert.deepEqual(list.data.map((m) => m.id), [MODEL_ID]);
    assert.equal((await client.models.retrieve(MODEL_ID)).id, MODEL_ID);
  }],
  ['chat: whole and streamed agree, usage equals the tokenizer', async () => {
    const req = { ...greedy, messages: msgs, max_tokens: 20, ignore_eos: true };
    const whole = await client.chat.completions.create(req);
    assert.equal(whole.object, 'chat.completion');
    assert.equal(whole.choices.length, 1);
    assert.equal(whole.choices[0].message.role, 'assistant');
    assert.equal(whole.choices[0].finish_reason, 'length');
    assert.equal(whole.choices[0].message.reasoning_content, undefined);
    assert.equal(whole.usage.prompt_tokens, tokenCount(chatTemplate(msgs)));
    assert.equal(whole.usage.completion_tokens, 20);
    assert.equal(whole.usage.total_tokens, whole.usage.prompt_tokens + 20);
    const s = await collectChat(await client.chat.completions.create(
      { ...req, stream: true, stream_options: { include_usage: true } }));
    assert.equal(s.content, whole.choices[0].message.content);
    assert.equal(s.finish, 'length');
    assert.equal(s.roles, 1);
    assert.deepEqual(s.usage, whole.usage);
  }],
  ['chat: content as a list of text parts', async () => {
    const parts = [{ role: 'user', content: [{ type: 'text', text: 'Write a function' }, { type: 'text', text: 'that sorts.' }] }];
    const flat = [{ role: 'user', content: 'Write a function\nthat sorts.' }];
    const a = await client.chat.completions.create({ ...greedy, messages: parts, max_tokens: 12 });
    const b = await client.chat.completions.create({ ...greedy, messages: flat, max_tokens: 12 });
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);
    assert.equal(a.usage.prompt_tokens, b.usage.prompt_tokens);
  }],
  ['completions: whole and streamed agree, usage equals the tokenizer', async () => {
    const prompt = 'def fibonacci(n):\n';
    const req = { ...greedy, prompt, max_tokens: 24, ignore_eos: true };
    const whole = await client.completions.create(req);
    assert.equal(whole.object, 'text_completion');
    assert.equal(whole.usage.prompt_tokens, tokenCount(prompt, { bos: true }));
    assert.equal(whole.usage.completion_tokens, 24);
    const s = await collectText(await client.completions.create(
      { ...req, stream: true, stream_options: { include_usage: true } }));
    assert.equal(s.text, whole.choices[0].text);
    assert.deepEqual(s.usage, whole.usage);
    // max_completion_tokens is the newer name of max_tokens
    const c = await client.completions.create({ ...greedy, prompt, max_completion_tokens: 5, ignore_eos: true });
    assert.equal(c.usage.completion_tokens, 5);
  }],
  ['stop strings (a string and a list), streamed and not', async () => {
    const prompt = 'class Stack:\n    def __init__(self):\n';
    const full = (await client.completions.create({ ...greedy, prompt, max_tokens: 40, ignore_eos: true })).choices[0].text;
    const stop = full.slice(12, 15);
    assert.ok(stop.length === 3, 'the reference is long enough');
    const want = full.slice(0, full.indexOf(stop));
    for (const st of [stop, ['@@never@@', stop]]) {
      const r = await client.completions.create({ ...greedy, prompt, max_tokens: 40, stop: st });
      assert.equal(r.choices[0].text, want);
      assert.equal(r.choices[0].finish_reason, 'stop');
      const s = await collectText(await client.completions.create({ ...greedy, prompt, max_tokens: 40, stop: st, stream: true }));
      assert.equal(s.text, want);
      assert.equal(s.finish, 'stop');
    }
  }],
  ['seeds reproduce sampled runs', async () => {
    const req = { model: MODEL_ID, prompt: 'import os\n', max_tokens: 24, temperature: 1.0, top_p: 0.95, top_k: 40, ignore_eos: true };
    const a = (await client.completions.create({ ...req, seed: 42 })).choices[0].text;
    const b = (await client.completions.create({ ...req, seed: 42 })).choices[0].text;
    const c = (await client.completions.create({ ...req, seed: 43 })).choices[0].text;
    assert.equal(a, b);
    assert.notEqual(a, c);
    const s = await collectText(await client.completions.create({ ...req, seed: 42, stream: true }));
    assert.equal(s.text, a);
    // the other sampling fields are taken
    await client.chat.completions.create({ ...req, prompt: undefined, messages: msgs, seed: 1, min_p: 0.05,
                                           presence_penalty: 0.5, frequency_penalty: 0.4, n: 1 });
    // frequency_penalty is applied: a strong one changes a greedy continuation that repeats itself
    const rep = { model: MODEL_ID, prompt: 'import os\n', max_tokens: 24, temperature: 0, ignore_eos: true };
    const plain = (await client.completions.create(rep)).choices[0].text;
    const freq = (await client.completions.create({ ...rep, frequency_penalty: 2 })).choices[0].text;
    assert.notEqual(plain, freq);
  }],
  ['logprobs: chat and completions, whole and streamed', async () => {
    const req = { ...greedy, messages: msgs, max_tokens: 8, ignore_eos: true, logprobs: true, top_logprobs: 3 };
    const whole = await client.chat.completions.create(req);
    const lp = whole.choices[0].logprobs.content;
    assert.equal(lp.length, 8);
    for (const e of lp) {
      assert.equal(e.top_logprobs.length, 3);
      assert.equal(e.top_logprobs[0].token, e.token, 'greedy draws the most likely token');
      assert.equal(e.top_logprobs[0].logprob, e.logprob);
      assert.ok(e.logprob <= 0 && e.top_logprobs[2].logprob <= e.top_logprobs[1].logprob);
      assert.deepEqual(e.bytes, [...Buffer.from(e.token, 'utf8')]);
    }
    assert.equal(lp.map((e) => e.token).join(''), whole.choices[0].message.content);
    // Streamed: every token's entry arrives in some chunk, the same as the whole response's.
    const entries = [];
    for await (const c of await client.chat.completions.create({ ...req, stream: true }))
      for (const ch of c.choices) if (ch.logprobs) entries.push(...ch.logprobs.content);
    assert.deepEqual(entries, lp);
    // vLLM's return_tokens_as_token_ids: the same entries, each token named by its id.
    const byId = await client.chat.completions.create({ ...req, return_tokens_as_token_ids: true });
    const ids = byId.choices[0].logprobs.content.map((e) => {
      assert.match(e.token, /^token_id:\d+$/);
      return Number(e.token.slice(9));
    });
    assert.deepEqual(byId.choices[0].logprobs.content.map((e) => e.logprob), lp.map((e) => e.logprob));
    const text = execFileSync(CLI, ['detokenize', '--model', MODEL_DIR], { input: ids.join(',') }).toString();
    assert.equal(text, whole.choices[0].message.content);
    // Without the field: null.
    const plain = await client.chat.completions.create({ ...greedy, messages: msgs, max_tokens: 2 });
    assert.equal(plain.choices[0].logprobs, null);
    // Completions: the legacy arrays; text_offset counts characters of the text before each token.
    const creq = { ...greedy, prompt: 'def add(a, b):', max_tokens: 6, ignore_eos: true, logprobs: 2 };
    const c = (await client.completions.create(creq)).choices[0];
    assert.equal(c.logprobs.tokens.length, 6);
    assert.equal(c.logprobs.tokens.join(''), c.text);
    let offset = 0;
    for (let i = 0; i < 6; i++) {
      assert.equal(c.logprobs.text_offset[i], offset);
      offset += [...c.logprobs.tokens[i]].length;
      const top = Object.values(c.logprobs.top_logprobs[i]);
      assert.ok(top.length >= 1 && top.length <= 2);
      assert.equal(Math.max(...top), c.logprobs.token_logprobs[i]);
    }
    const streamed = [];
    for await (const k of await client.completions.create({ ...creq, stream: true }))
      for (const ch of k.choices) if (ch.logprobs) streamed.push(...ch.logprobs.token_logprobs);
    assert.deepEqual(streamed, c.logprobs.token_logprobs);
  }],
  ['tools: accepted with earlier tool calls and results, rendered by the template', async () => {
    const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather of a city',
                                                   parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const conv = [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: null,
        tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"temp": 20}' },
    ];
    const r = await client.chat.completions.create({ ...greedy, messages: conv, tools, max_tokens: 4 });
    assert.ok(['stop', 'length', 'tool_calls'].includes(r.choices[0].finish_reason));
    // The earlier call (content none, as DeepSeek's templates want) and the tool's output reach the template.
    const rendered = chatTemplate(conv);
    assert.match(rendered, /get_weather/);
    assert.match(rendered, /\{"temp": 20\}/);
    const without = await client.chat.completions.create({ ...greedy, messages: conv, max_tokens: 1 });
    assert.equal(without.usage.prompt_tokens, tokenCount(rendered));
    // This template ignores `tools`, so the server writes them into the system prompt: a longer
    // description is a longer prompt, with tool_choice "none" as with "auto".
    const longer = [{ ...tools[0], function: { ...tools[0].function,
                                               description: 'Weather of a city, in degrees Celsius, for today and the next two days' } }];
    const a = await client.chat.completions.create({ ...greedy, messages: conv, tools, max_tokens: 1 });
    const b = await client.chat.completions.create({ ...greedy, messages: conv, tools: longer, max_tokens: 1 });
    const c = await client.chat.completions.create({ ...greedy, messages: conv, tools: longer, tool_choice: 'none', max_tokens: 1 });
    assert.ok(a.usage.prompt_tokens > without.usage.prompt_tokens + 20, `${a.usage.prompt_tokens} vs ${without.usage.prompt_tokens}`);
    assert.ok(b.usage.prompt_tokens >= a.usage.prompt_tokens + 8, `${b.usage.prompt_tokens} vs ${a.usage.prompt_tokens}`);
    assert.equal(c.usage.prompt_tokens, b.usage.prompt_tokens);
    // vLLM's responses carry "tool_calls": [] on plain assistant messages: read as none.
    const echoed = await client.chat.completions.create({ ...greedy, max_tokens: 1, messages: [
      { role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello', tool_calls: [] }, { role: 'user', content: 'bye' }] });
    assert.equal(echoed.choices.length, 1);
    // An empty list is a plain chat.
    const empty = await client.chat.completions.create({ ...greedy, messages: msgs, tools: [], max_tokens: 3 });
    const plain = await client.chat.completions.create({ ...greedy, messages: msgs, max_tokens: 3 });
    assert.equal(empty.choices[0].message.content, plain.choices[0].message.content);
    assert.equal(empty.usage.prompt_tokens, plain.usage.prompt_tokens);
    assert.equal(empty.choices[0].message.tool_calls, undefined);
    for (const [body, param] of [[{ tools, tool_choice: 'required' }, 'tool_choice'],
                                 [{ tools, tool_choice: { type: 'function', function: { name: 'get_weather' } } }, 'tool_choice'],
                                 [{ tools: [{ type: 'function', function: {} }] }, 'tools[0].function.name'],
                                 [{ tools: [{ type: 'retrieval' }] }, 'tools[0].type'],
                                 [{ tools: {} }, 'tools'],
                                 [{ tools: [{ type: 5, function: { name: 'f' } }] }, 'tools[0].type'],
                                 [{ tools: [{ type: null, function: { name: 'f' } }] }, 'tools[0].type'],
                                 [{ tools, parallel_tool_calls: 'yes' }, 'parallel_tool_calls']]) {
      const res = await post(srv.base, '/v1/chat/completions', { model: MODEL_ID, messages: msgs, ...body });
      assert.equal(res.status, 400, JSON.stringify(body) + ' -> ' + res.text);
      assert.equal(res.json.error.param, param, res.text);
    }
    const bad = await post(srv.base, '/v1/chat/completions', { model: MODEL_ID, messages: [
      { role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { arguments: '{}' } }] }] });
    assert.equal(bad.json.error.param, 'messages[0].tool_calls[0].function.name', bad.text);
    const comp = await post(srv.base, '/v1/completions', { model: MODEL_ID, prompt: 'x', tools });
    assert.equal(comp.json.error.param, 'tools', comp.text);
  }],
  ['n choices: each its own stream, whole and streamed, seeds seed + i', async () => {
    // Batch-invariant: a choice's tokens do not depend on what it is batched with (the other choices).
    const bs = await startServer(['--batch-invariant', '--max-streams', '4']);
    try {
      const c = new OpenAI({ baseURL: bs.base + '/v1', apiKey: 'x', maxRetries: 0 });
      const req = { ...greedy, messages: msgs, max_tokens: 6, ignore_eos: true, n: 3 };
      const whole = await c.chat.completions.create(req);
      assert.deepEqual(whole.choices.map((k) => k.index), [0, 1, 2]);
      const one = await c.chat.completions.create({ ...req, n: 1 });
      for (const k of whole.choices) assert.equal(k.message.content, one.choices[0].message.content, 'greedy: all alike');
      assert.equal(whole.usage.completion_tokens, 18);
      assert.equal(whole.usage.prompt_tokens, one.usage.prompt_tokens);
      // Sampled with a seed: choice i is the single request with seed + i.
      const sreq = { model: MODEL_ID, prompt: 'def add(a, b):', max_tokens: 8, ignore_eos: true, temperature: 1.2, seed: 40 };
      const multi = await c.completions.create({ ...sreq, n: 3 });
      for (let i = 0; i < 3; i++) {
        const single = await c.completions.create({ ...sreq, seed: 40 + i });
        assert.equal(multi.choices[i].text, single.choices[0].text, `choice ${i}`);
      }
      assert.ok(new Set(multi.choices.map((k) => k.text)).size > 1, 'different seeds, different samples');
      // Streamed: chunks of every index, each choice's text as the whole response's, one finish each.
      const texts = ['', '', ''], finishes = [0, 0, 0];
      let usage = null;
      for await (const k of await c.completions.create({ ...sreq, n: 3, stream: true, stream_options: { include_usage: true } })) {
        for (const ch of k.choices) { texts[ch.index] += ch.text; if (ch.finish_reason) finishes[ch.index]++; }
        if (k.usage) usage = k.usage;
      }
      assert.deepEqual(texts, multi.choices.map((k) => k.text));
      assert.deepEqual(finishes, [1, 1, 1]);
      assert.equal(usage.completion_tokens, 24);
      const roles = [0, 0, 0], content = ['', '', ''];
      for await (const k of await c.chat.completions.create({ ...req, stream: true }))
        for (const ch of k.choices) { if (ch.delta.role) roles[ch.index]++; content[ch.index] += ch.delta.content || ''; }
      assert.deepEqual(roles, [1, 1, 1]);
      assert.deepEqual(content, whole.choices.map((k) => k.message.content));
      // More choices than the server runs streams: a 400, not a 503 that no retry could pass.
      const many = await post(bs.base, '/v1/completions', { ...sreq, n: 5 });
      assert.equal(many.status, 400, many.text);
      assert.equal(many.json.error.param, 'n');
      const h = await waitIdle(bs.base);  // every choice's stream freed
      assert.equal(h.requests_total, 8, 'requests (the refused one not), not streams');
    } finally { await bs.stop(); }
  }],
  ['logit_bias: +100 forces a token, -100 bans one, bad entries are 400s', async () => {
    const req = { ...greedy, prompt: 'def add(a, b):', max_tokens: 3, ignore_eos: true, logprobs: 1,
                  return_tokens_as_token_ids: true };
    const forced = (await client.completions.create({ ...req, logit_bias: { 65: 100 } })).choices[0];
    assert.deepEqual(forced.logprobs.tokens, ['token_id:65', 'token_id:65', 'token_id:65']);
    const plain = (await client.completions.create(req)).choices[0].logprobs.tokens;
    const first = plain[0].slice(9);
    const banned = (await client.completions.create({ ...req, logit_bias: { [first]: -100 } })).choices[0];
    assert.notEqual(banned.logprobs.tokens[0], plain[0]);
    const chat = await client.chat.completions.create({ ...greedy, messages: msgs, max_tokens: 2, logit_bias: { 65: 100 } });
    assert.equal(chat.choices[0].message.content, execFileSync(CLI, ['detokenize', '--model', MODEL_DIR], { input: '65,65' }).toString());
    for (const lb of [{ 65: 101 }, { x: 1 }, { '-1': 1 }, { 99999999: 1 }, [65], { 65: 'big' }]) {
      const r = await post(srv.base, '/v1/completions', { ...req, logit_bias: lb });
      assert.equal(r.status, 400, JSON.stringify(lb) + ' -> ' + r.text);
      assert.equal(r.json.error.param, 'logit_bias', r.text);
    }
  }],
  ['bad requests: 400 naming the field, never a 500', async () => {
    const r = await post(srv.base, '/v1/chat/completions', '{"model": "x", ');
    assert.equal(r.status, 400);
    assert.equal(r.json.error.type, 'invalid_request_error');
    assert.match(r.json.error.message, /not valid JSON/);
    const cases = [
      [{ messages: msgs, max_tokens: '10' }, 'max_tokens'],
      [{ messages: msgs, max_tokens: 0 }, 'max_tokens'],
      [{ messages: msgs, max_tokens: 1e9 }, 'max_tokens'],
      [{ messages: msgs, max_completion_tokens: 1e9 }, 'max_completion_tokens'],
      [{ messages: msgs, temperature: 'hot' }, 'temperature'],
      [{ messages: msgs, temperature: 7 }, 'temperature'],
      [{ messages: msgs, top_p: [1] }, 'top_p'],
      [{ messages: msgs, seed: 1.5 }, 'seed'],
      [{ messages: msgs, stop: 5 }, 'stop'],
      [{ messages: msgs, stop: ['a', 3] }, 'stop'],
      [{ messages: msgs, n: 17 }, 'n'],
      [{ messages: msgs, n: 0 }, 'n'],
      [{ messages: msgs, stream: 'yes' }, 'stream'],
      [{ messages: msgs, stream_options: { include_usage: true } }, 'stream_options'],
      [{ messages: msgs, frequency_penalty: 3 }, 'frequency_penalty'],
      [{ messages: msgs, top_logprobs: 3 }, 'top_logprobs'],
      [{ messages: msgs, logprobs: true, top_logprobs: 21 }, 'top_logprobs'],
      [{ messages: msgs, logprobs: 1 }, 'logprobs'],
      [{ messages: 'hi' }, 'messages'],
      [{ messages: [] }, 'messages'],
      [{}, 'messages'],
      [{ messages: [{ role: 'user' }] }, 'messages[0].content'],
      [{ messages: [{ role: 7, content: 'x' }] }, 'messages[0].role'],
      [{ messages: [{ role: 'user', content: 5 }] }, 'messages[0].content'],
      [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }] }, 'messages[0].content[0].type'],
    ];
    for (const [body, param] of cases) {
      const res = await post(srv.base, '/v1/chat/completions', { model: MODEL_ID, ...body });
      assert.equal(res.status, 400, JSON.stringify(body) + ' -> ' + res.text);
      assert.equal(res.json.error.param, param, JSON.stringify(body) + ' -> ' + res.text);
    }
    for (const [body, param] of [[{ prompt: 'x', logprobs: 21 }, 'logprobs'], [{ prompt: 'x', logprobs: true }, 'logprobs'],
                                 [{ prompt: 'x', logprobs: 1, top_logprobs: 1 }, 'top_logprobs'],
                                 [{ prompt: 5 }, 'prompt'], [{ prompt: [1e9] }, 'prompt'], [{}, 'prompt'],
                                 [{ prompt: ['a', 'b'] }, 'prompt'], [{ prompt: 'x', model: 5 }, 'model']]) {
      const res = await post(srv.base, '/v1/completions', { model: MODEL_ID, ...body });
      assert.equal(res.status, 400, res.text);
      assert.equal(res.json.error.param, param, res.text);
    }
    assert.equal((await post(srv.base, '/v1/completions', '[1, 2]')).status, 400);
    // through the client: a BadRequestError with the status
    await assert.rejects(client.chat.completions.create({ ...greedy, messages: msgs, n: 30 }),
                         (e) => e.status === 400 && /between 1 and 16/.test(e.message));
  }],
  ['unknown model and route: 404', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'gpt-4o', messages: msgs }),
                         (e) => e.status === 404 && e.code === 'model_not_found');
    await assert.rejects(client.models.retrieve('gpt-4o'), (e) => e.status === 404);
    const r = await post(srv.base, '/v1/embeddings', { model: MODEL_ID, input: 'x' });
    assert.equal(r.status, 404);
    assert.equal(r.json.error.code, 'not_found');
  }],
  ['oversized body: 413', async () => {
    const r = await post(srv.base, '/v1/completions', { model: MODEL_ID, prompt: 'x'.repeat(70000) });
    assert.equal(r.status, 413);
    assert.equal(r.json.error.code, 'request_too_large');
    assert.equal((await health(srv.base)).status, 'ok');
  }],
  ['300 randomly mangled bodies: a 200 or a 4xx error object, never a 500', async () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const values = [null, true, -1, 0, 1, 2.5, 1e300, -1e300, 2 ** 63, 'x', '', [], [1], ['a'], {}, { a: 1 },
                    [{ type: 'text' }], [{ role: 'user', content: null }], '\u0000\ud800', 'x'.repeat(300)];
    const keys = ['model', 'messages', 'prompt', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p',
                  'top_k', 'min_p', 'presence_penalty', 'frequency_penalty', 'seed', 'stop', 'n', 'stream',
                  'stream_options', 'logprobs', 'top_logprobs', 'response_format', 'ignore_eos',
                  'repetition_penalty', 'logit_bias'];
    for (let i = 0; i < 300; i++) {
      const chat = i % 2 === 0;
      const body = chat ? { model: MODEL_ID, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }
                        : { model: MODEL_ID, prompt: 'hi', max_tokens: 2 };
      for (let k = 0; k < 1 + Math.floor(rand() * 3); k++)
        body[keys[Math.floor(rand() * keys.length)]] = values[Math.floor(rand() * values.length)];
      if (body.max_tokens === undefined || body.max_tokens === null || body.max_tokens > 4) body.max_tokens = 2;
      delete body.max_completion_tokens;
      let text = JSON.stringify(body);
      if (i % 10 === 9) text = text.slice(0, Math.floor(rand() * text.length));  // truncated JSON
      const r = await post(srv.base, chat ? '/v1/chat/completions' : '/v1/completions', text);
      assert.ok(r.status === 200 || (r.status >= 400 && r.status < 500), `${r.status} for ${text}: ${r.text}`);
      if (r.status !== 200) assert.equal(typeof r.json.error.message, 'string', r.text);
    }
    assert.equal((await health(srv.base)).status, 'ok');
  }],
  ['a client that hangs up on a whole (non-streamed) response cancels its stream', async () => {
    await waitIdle(srv.base);
    const ctl = new AbortController();
    const pending = client.completions.create({ ...greedy, prompt: 'def f():\n', max_tokens: 12000, ignore_eos: true },
                                              { signal: ctl.signal });
    while ((await health(srv.base)).active_streams !== 1) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    ctl.abort();
    await assert.rejects(pending);
    await waitIdle(srv.base, 5000);  // 12,000 tokens would take far longer
    assert.ok(Date.now() - t0 < 5000);
  }],
  ['no leaked streams', async () => { await waitIdle(srv.base); }],
]);

// Servers with other options.
const failed2 = await run([
  ['--api-key: 401 without it, served with it, /health open', async () => {
    const s = await startServer(['--api-key', 'sekret']);
    try {
      const bad = new OpenAI({ baseURL: s.base + '/v1', apiKey: 'wrong', maxRetries: 0 });
      await assert.rejects(bad.models.list(), (e) => e.status === 401);
      const r = await post(s.base, '/v1/completions', { model: MODEL_ID, prompt: 'x' });
      assert.equal(r.status, 401);
      assert.equal(r.json.error.code, 'invalid_api_key');
      const good = new OpenAI({ baseURL: s.base + '/v1', apiKey: 'sekret', maxRetries: 0 });
      const c = await good.completions.create({ ...greedy, prompt: 'x', max_tokens: 2 });
      assert.equal(c.choices.length, 1);
      assert.equal((await health(s.base)).status, 'ok');
    } finally { await s.stop(); }
  }],
  ['--max-streams: 503 when full, the slot back after the client leaves', async () => {
    const s = await startServer(['--max-streams', '1']);
    try {
      const c = new OpenAI({ baseURL: s.base + '/v1', apiKey: 'x', maxRetries: 0 });
      const long = await c.completions.create({ ...greedy, prompt: 'def f():\n', max_tokens: 4000, ignore_eos: true, stream: true });
      const it = long[Symbol.asyncIterator]();
      await it.next();
      await assert.rejects(c.completions.create({ ...greedy, prompt: 'x', max_tokens: 1 }), (e) => e.status === 503);
      long.controller.abort();
      await waitIdle(s.base);
      const ok = await c.completions.create({ ...greedy, prompt: 'x', max_tokens: 1 });
      assert.equal(ok.choices.length, 1);
    } finally { await s.stop(); }
  }],
  ['R1 template: reasoning_content before </think>', async () => {
    // The shipped model with DeepSeek-R1's template (the generation prompt opens "<think>\n").
    const dir = tmpDir('r1');
    try {
      for (const f of fs.readdirSync(MODEL_DIR))
        if (f !== 'tokenizer_config.json') fs.symlinkSync(path.join(MODEL_DIR, f), path.join(dir, f));
      const cfg = JSON.parse(fs.readFileSync(path.join(MODEL_DIR, 'tokenizer_config.json')));
      const tail = "{{'<｜Assistant｜>'}}{% endif %}";
      assert.ok(cfg.chat_template.endsWith(tail));
      cfg.chat_template = cfg.chat_template.slice(0, -tail.length) + "{{'<｜Assistant｜><think>\n'}}{% endif %}";
      fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(cfg));
      const s = await startServer(['--model', dir, '--alias', 'r1']);
      try {
        const c = new OpenAI({ baseURL: s.base + '/v1', apiKey: 'x', maxRetries: 0 });
        const req = { model: 'r1', temperature: 0, messages: msgs, max_tokens: 16, ignore_eos: true };
        const whole = await c.chat.completions.create(req);
        const m = whole.choices[0].message;
        assert.equal(typeof m.reasoning_content, 'string');
        // This model never closes its reasoning: all of the reply is reasoning.
        assert.ok(m.reasoning_content.length > 0);
        assert.equal(m.content, '');
        let reasoning = '', content = '';
        for await (const ch of await c.chat.completions.create({ ...req, stream: true })) {
          for (const x of ch.choices) { reasoning += x.delta.reasoning_content || ''; content += x.delta.content || ''; }
        }
        assert.equal(reasoning, m.reasoning_content);
        assert.equal(content, '');
      } finally { await s.stop(); }
    } finally { fs.rmSync(dir, { recursive: true, force: true }); }
  }],
  ['KV budget full: 503 for the request that cannot fit, the other completes', async () => {
    // 2 pages of 64 tokens: each request fits alone, the two together do not.
    const s = await startServer(['--kv-cache-bytes', String(2 * 64 * 4 * 576 * 4)]);
    try {
      const body = { ...greedy, prompt: 'def f(x):', max_tokens: 120, ignore_eos: true };
      const [a, b] = await Promise.all([post(s.base, '/v1/completions', body), post(s.base, '/v1/completions', body)]);
      assert.deepEqual([a.status, b.status].sort(), [200, 503], a.text + ' / ' + b.text);
      const failed = a.status === 503 ? a : b;
      assert.equal(failed.json.error.code, 'kv_cache_full');
      assert.equal((a.status === 200 ? a : b).json.usage.completion_tokens, 120);
      const tooLong = await post(s.base, '/v1/completions', { ...body, max_tokens: 200 });
      assert.equal(tooLong.status, 400);
      assert.equal(tooLong.json.error.param, 'max_tokens');
      await waitIdle(s.base);
    } finally { await s.stop(); }
  }],
  ['`moert serve` runs moert-serve; its options are checked', async () => {
    const help = spawnSync(CLI, ['serve', '--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout.toString(), /usage: moert serve/);
    const bad = spawnSync(CLI, ['serve', '--bogus']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr.toString(), /unknown option '--bogus'/);
  }],
  ['SIGTERM: a short in-flight stream finishes, a long one is cancelled after the grace, exit status 0', async () => {
    const s = await startServer(['--shutdown-timeout', '1.5']);
    const c = new OpenAI({ baseURL: s.base + '/v1', apiKey: 'x', maxRetries: 0 });
    const long = await c.completions.create({ ...greedy, prompt: 'def f():\n', max_tokens: 12000, ignore_eos: true, stream: true });
    const it = long[Symbol.asyncIterator]();
    await it.next();
    const short = await c.completions.create({ ...greedy, prompt: 'import os\n', max_tokens: 24, ignore_eos: true, stream: true,
                                              stream_options: { include_usage: true } });
    const sit = short[Symbol.asyncIterator]();
    const firstShort = await sit.next();
    s.proc.kill('SIGTERM');
    let usage = null, finish = null;
    for (let r = firstShort; !r.done; r = await sit.next()) {
      if (r.value.usage) usage = r.value.usage;
      for (const ch of r.value.choices) if (ch.finish_reason) finish = ch.finish_reason;
    }
    assert.equal(finish, 'length');
    assert.equal(usage.completion_tokens, 24);
    // The long stream ends (an error event: cancelled at shutdown) rather than hanging.
    await assert.rejects((async () => { for (;;) { const r = await it.next(); if (r.done) throw new Error('done'); } })(),
                         (e) => e.message === 'done' || /shutting down|terminated|other side closed/.test(e.message));
    const { code } = await s.exited;
    assert.equal(code, 0, s.stderr());
  }],
]);

const { code } = await srv.stop();
assert.equal(code, 0);
process.exit(failed + failed2 ? 1 : 0);
