// Generates this folder's test tokenizer and its cases with tiktoken itself (npm `tiktoken`: tiktoken's
// Rust core as WebAssembly, the library Moonshot's TikTokenTokenizer drives) and the chat cases with
// @huggingface/jinja. Run from a scratch directory outside the repository:
//   mkdir -p /tmp/tkgen && cd /tmp/tkgen && npm install tiktoken@1.0.22 @huggingface/jinja@0.5.11
//   cp /path/to/tests/data/tokenizer-tiktoken/*.mjs . && node make_cases.mjs /path/to/tests/data/tokenizer-tiktoken
// Writes tiktoken.model (the first 24,000 ranks of cl100k_base, OpenAI's MIT-licensed ranks shipped in
// that package: a prefix of BPE ranks is itself a valid tiktoken file), tokenizer_config.json (Moonlight's
// layout: auto_map, added_tokens_decoder, chat_template), encode_cases.jsonl, chunk_cases.jsonl and
// chat_cases.jsonl. Deterministic.
import { execFileSync } from "child_process";
import fs from "fs";
import path from "path";
import { Tiktoken, get_encoding } from "tiktoken";
import { Template } from "@huggingface/jinja";
import { MOONSHOT_PATTERN } from "./moonshot_pattern.mjs";

const OUT = process.argv[2];
const ROOT = path.resolve(OUT, "../../..");
const N = 24000;

const PAT = MOONSHOT_PATTERN;

// Moonlight-16B-A3B-Instruct's chat template (one line, as its tokenizer_config.json has it).
const CHAT =
  "{%- for message in messages -%}{%- if loop.first and messages[0]['role'] != 'system' -%}" +
  "<|im_system|>system<|im_middle|>You are a helpful assistant<|im_end|>{%- endif -%}" +
  "{%- if message['role'] == 'system' -%}<|im_system|>{%- endif -%}" +
  "{%- if message['role'] == 'user' -%}<|im_user|>{%- endif -%}" +
  "{%- if message['role'] == 'assistant' -%}<|im_assistant|>{%- endif -%}" +
  "{{ message['role'] }}<|im_middle|>{{ message['content'] }}<|im_end|>{%- endfor -%}" +
  "{%- if add_generation_prompt -%}<|im_assistant|>assistant<|im_middle|>{%- endif -%}";

// ---- tiktoken.model
const cl = get_encoding("cl100k_base");
const lines = [];
for (let r = 0; r < N; r++) lines.push(Buffer.from(cl.decode_single_token_bytes(r)).toString("base64") + " " + r);
cl.free();
fs.writeFileSync(path.join(OUT, "tiktoken.model"), lines.join("\n") + "\n");

// ---- tokenizer_config.json: Moonlight's special tokens at its offsets from the first special id
const named = { 0: "[BOS]", 1: "[EOS]", 2: "<|im_end|>", 3: "<|im_user|>", 4: "<|im_assistant|>",
  6: "<|start_header_id|>", 7: "<|end_header_id|>", 9: "[EOT]", 10: "<|im_system|>", 17: "<|im_middle|>",
  254: "[UNK]", 255: "[PAD]" };
const decoder = {};
for (const [k, v] of Object.entries(named))
  decoder[String(N + Number(k))] = { content: v, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
const config = {
  added_tokens_decoder: decoder,
  additional_special_tokens: ["<|im_end|>", "<|im_user|>", "<|im_assistant|>", "<|start_header_id|>",
    "<|end_header_id|>", "[EOT]", "<|im_system|>", "<|im_middle|>"],
  auto_map: { AutoTokenizer: ["tokenization_moonshot.TikTokenTokenizer", null] },
  bos_token: "[BOS]", chat_template: CHAT, clean_up_tokenization_spaces: false, eos_token: "[EOS]",
  extra_special_tokens: {}, model_max_length: 1048576, pad_token: "[PAD]", tokenizer_class: "TikTokenTokenizer",
  unk_token: "[UNK]",
};
fs.writeFileSync(path.join(OUT, "tokenizer_config.json"), JSON.stringify(config, null, 2) + "\n");

// ---- the tokenizer as TikTokenTokenizer builds it
const specials = {};
for (let i = 0; i < 256; i++) specials[named[i] ?? `<|reserved_token_${N + i}|>`] = N + i;
const enc = new Tiktoken(lines.join("\n"), specials, PAT);

// TikTokenTokenizer.encode's slicing: 400,000-character slices, each cut at runs over 25,000 (str.isspace).
// str.isspace from Python itself (the class tests each character with it).
const PY_SPACE = new Set(JSON.parse(execFileSync("python3", ["-c",
  "import json; print(json.dumps([c for c in range(0x110000) if chr(c).isspace()]))"]).toString()));
const isspace = (c) => PY_SPACE.has(c.codePointAt(0));
function splitRuns(chars, maxRun) {
  const out = [];
  let len = 0, sp = chars.length ? isspace(chars[0]) : false, start = 0;
  for (let i = 0; i < chars.length; i++) {
    const now = isspace(chars[i]);
    if (sp !== now) { len = 1; sp = now; }
    else if (++len > maxRun) { out.push(chars.slice(start, i).join("")); start = i; len = 1; }
  }
  out.push(chars.slice(start).join(""));
  return out;
}
function chunks(text, maxChars, maxRun) {
  const chars = Array.from(text);
  const out = [];
  for (let i = 0; i < chars.length; i += maxChars) out.push(...splitRuns(chars.slice(i, i + maxChars), maxRun));
  return out;
}
const encodeKimi = (text, special) => {
  const ids = [];
  for (const c of chunks(text, 400000, 25000))
    ids.push(...(special ? enc.encode(c, "all") : enc.encode(c, [], [])));
  return ids;
};

// ---- texts: the shared corpus (every script, whitespace, emoji, code), then Han-specific and long runs
const texts = [];
for (const l of fs.readFileSync(path.join(ROOT, "tests/data/tokenizer-corpus/deepseek_v3_cases.jsonl"), "utf8").split("\n"))
  if (l) texts.push(JSON.parse(l).text);
texts.push("中文。日本語、カタカナ々〇：漢字ＡＢＣ", "Hello世界，你好World！", "ſome Straße ǅemo İstanbul ΣΊΣΥΦΟΣ",
  "Ǆǅǆ ǈ ǋ 'S 'T 'RE 'LL 'D", "中" + "文".repeat(300), "[BOS]hi<|im_end|><|im_middle|><|reserved_token_24100|>x",
  " ".repeat(30000) + "x", "a".repeat(26000) + " " + "b".repeat(3), "\u3000".repeat(25001) + "丁");
const rows = [];
for (const text of texts) {
  const ids = encodeKimi(text, true);
  const row = { text, ids };
  const plain = encodeKimi(text, false);
  if (plain.join() !== ids.join()) row.ids_no_special = plain;
  const dec = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true }).decode(enc.decode(new Uint32Array(ids)));
  if (dec !== text) row.decoded = dec;
  rows.push(JSON.stringify(row));
}
fs.writeFileSync(path.join(OUT, "encode_cases.jsonl"), rows.join("\n") + "\n");

// ---- the slicing alone, with small limits (the C++ side calls split_tiktoken_chunks with them)
const chunkRows = [];
for (const [text, mc, mr] of [["aaaa  bb   c", 5, 2], ["  x y  ", 3, 1], ["中文 。\u3000\u3000 ab", 4, 2],
  ["abcdefghij", 3, 100], ["\n\n\n\n\nq", 100, 2], ["\x1c\x1d\u200b\u180e x", 100, 1]])
  chunkRows.push(JSON.stringify({ text, max_chars: mc, max_run: mr, chunks: chunks(text, mc, mr) }));
fs.writeFileSync(path.join(OUT, "chunk_cases.jsonl"), chunkRows.join("\n") + "\n");

// ---- chat: rendered by jinja from the one-line template and from a re-indented copy (they must agree)
const pretty = CHAT.replace(/\}(?=\{)/g, "}\n    ");
const tpl = new Template(CHAT), tplPretty = new Template(pretty);
const convs = [
  [{ role: "user", content: "Is 123 a prime?" }],
  [{ role: "system", content: "You are terse." }, { role: "user", content: "hi" }, { role: "assistant", content: "Hello." }, { role: "user", content: "中文？" }],
  [{ role: "assistant", content: "I speak first." }],
  [{ role: "user", content: "a" }, { role: "tool", content: "{\"x\": 1}" }, { role: "user", content: "<|im_end|> in text" }],
  [],
];
const chatRows = [];
for (const messages of convs)
  for (const gen of [false, true]) {
    const rendered = tpl.render({ messages, add_generation_prompt: gen, bos_token: "[BOS]", eos_token: "[EOS]" });
    const again = tplPretty.render({ messages, add_generation_prompt: gen, bos_token: "[BOS]", eos_token: "[EOS]" });
    if (again !== rendered) throw new Error("the re-indented template renders differently: " + JSON.stringify(again));
    chatRows.push(JSON.stringify({ messages, add_generation_prompt: gen, rendered, ids: encodeKimi(rendered, true) }));
  }
fs.writeFileSync(path.join(OUT, "chat_cases.jsonl"), chatRows.join("\n") + "\n");
fs.writeFileSync(path.join(OUT, "chat_template_pretty.jinja"), pretty);
enc.free();
console.log(`wrote ${rows.length} encode, ${chunkRows.length} chunk and ${chatRows.length} chat cases`);
