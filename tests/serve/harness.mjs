// Shared by the moert serve tests: starts moert-serve on a free loopback port (--port 0; the port is read
// from its first line), loads the pinned `openai` client from the build tree (tests/serve/npm, installed
// by the serve_npm_setup test), and small helpers. Only 127.0.0.1 is ever contacted.
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const SERVE = process.env.MOERT_SERVE;
export const CLI = process.env.MOERT_CLI;
export const MODEL_DIR = process.env.MOERT_MODEL_DIR;
export const MODEL_ID = path.basename(MODEL_DIR);

export function loadOpenAI() {
  const dir = process.env.MOERT_NPM_DIR;
  try {
    const require = createRequire(path.join(dir, 'package.json'));
    const mod = require('openai');
    return mod.OpenAI || mod.default || mod;
  } catch (e) {
    throw new Error(`the openai npm client is not installed in ${dir} (the serve_npm_setup test installs it ` +
                    `from the npm registry: is npm reachable?): ${e.message}`);
  }
}

export async function startServer(args = [], env = {}) {
  const proc = spawn(SERVE, ['--port', '0', '--threads', '2', ...args],
                     { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const port = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('moert-serve did not start in 60 s: ' + stderr)), 60000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    exited.then(({ code }) => { clearTimeout(timer); reject(new Error(`moert-serve exited (${code}): ${stderr}`)); });
  });
  const base = `http://127.0.0.1:${port}`;
  return {
    port, proc, base, exited,
    stderr: () => stderr,
    async stop(signal = 'SIGTERM') { proc.kill(signal); return exited; },
  };
}

export async function health(base) {
  const r = await fetch(base + '/health');
  return r.json();
}

// Waits until /health reports no active stream (every request, aborted ones included, has ended).
export async function waitIdle(base, ms = 15000) {
  const until = Date.now() + ms;
  for (;;) {
    const h = await health(base);
    if (h.active_streams === 0) return h;
    if (Date.now() > until) throw new Error('streams still active: ' + JSON.stringify(h));
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Token ids of text as the model's tokenizer gives them (the moert CLI, through moert.h).
export function tokenCount(text, { bos = false } = {}) {
  const out = execFileSync(CLI, ['tokenize', '--model', MODEL_DIR, ...(bos ? ['--bos'] : [])], { input: text });
  const s = out.toString().trim();
  return s ? s.split(',').length : 0;
}

export function chatTemplate(messages) {
  return execFileSync(CLI, ['chat-template', '--model', MODEL_DIR], { input: JSON.stringify(messages) }).toString();
}

export async function post(base, route, body, headers = {}) {
  const r = await fetch(base + route, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text };
}

export function tmpDir(tag) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `moert_serve_${tag}_${process.pid}_`));
}

// A tiny runner: named async checks in order, a summary, exit status 1 on any failure.
export async function run(tests) {
  let failed = 0;
  for (const [name, fn] of tests) {
    const t0 = Date.now();
    try {
      await fn();
      console.log(`ok   ${name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}: ${e.stack || e}`);
      // A client's connection errors carry what the socket said (reset, refused, closed) in their causes.
      for (let c = e.cause, depth = 0; c && depth < 4; c = c.cause, depth++) console.log(`  cause: ${c.stack || c}`);
    }
  }
  console.log(failed ? `${failed} of ${tests.length} failed` : `all ${tests.length} passed`);
  return failed;
}
