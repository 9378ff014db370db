// Generates the tokenizer corpus cases with Hugging Face's own `tokenizers` (npm) and the chat cases with
// @huggingface/jinja. Run from a scratch directory outside the repository:
//   mkdir -p /tmp/tokgen && cd /tmp/tokgen && npm install tokenizers@0.23.2 @huggingface/jinja@0.5.11
//   NODE_PATH=/tmp/tokgen/node_modules node /path/to/tests/data/tokenizer-corpus/make_cases.js
// Output (next to this script): *_cases.jsonl. Deterministic (seeded PRNG).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const {Tokenizer} = require('tokenizers');

const HERE = __dirname;
const ROOT = path.resolve(HERE, '../../..');
const V3_DIR = path.join(ROOT, 'tests/data/tokenizer-deepseek-v3');
const TINY_DIR = path.join(ROOT, 'samples/models/moert-tiny-coder');

// ------------------------------------------------------------------------------------------- variants
// The same constructions are done by tests/runtime/tokenizer_test.cpp (make_variant_json).
function readJson(p) { return JSON.parse(fs.readFileSync(p, 'utf8')); }
function writeTmp(name, obj) {
  const p = path.join(os.tmpdir(), 'moert-tok-' + name + '.json');
  fs.writeFileSync(p, JSON.stringify(obj));
  return p;
}
function maxId(tj) {
  let m = -1;
  for (const k in tj.model.vocab) m = Math.max(m, tj.model.vocab[k]);
  for (const a of tj.added_tokens) m = Math.max(m, a.id);
  return m;
}
// v2style: tiny-coder with the pre-tokenizer of v2_pretokenizer.json.
function makeV2Style() {
  const tj = readJson(path.join(TINY_DIR, 'tokenizer.json'));
  tj.pre_tokenizer = readJson(path.join(HERE, 'v2_pretokenizer.json'));
  return tj;
}
// gpt2style: tiny-coder with variant_gpt2style.json's normalizer, pre-tokenizer and extra added tokens
// (ids from max id + 1, in order).
function makeGpt2Style() {
  const tj = readJson(path.join(TINY_DIR, 'tokenizer.json'));
  const v = readJson(path.join(HERE, 'variant_gpt2style.json'));
  tj.normalizer = v.normalizer;
  tj.pre_tokenizer = v.pre_tokenizer;
  let id = maxId(tj) + 1;
  for (const a of v.extra_added_tokens) tj.added_tokens.push(Object.assign({id: id++}, a));
  return tj;
}
// No special tokens: what encode_special_tokens (parse_special = false) does to special tokens.
function withoutSpecial(tj) {
  const c = JSON.parse(JSON.stringify(tj));
  c.added_tokens = c.added_tokens.filter((a) => !a.special);
  return c;
}

// ------------------------------------------------------------------------------------------- texts
let seed = 0x5eed1234;
function rnd() {  // mulberry32
  seed = (seed + 0x6D2B79F5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const ri = (n) => Math.floor(rnd() * n);
const pick = (a) => a[ri(a.length)];
const cp = (c) => String.fromCodePoint(c);

const PROSE = [
  'The quick brown fox jumps over the lazy dog.',
  "It's a truth universally acknowledged, isn't it? We'll see what they'd say; I'm sure you've heard.",
  'In 1969, Apollo 11 landed on the Moon; 600 million people watched the broadcast live.',
  'Mixture-of-experts models route each token to a few experts out of many, e.g. 8 of 256.',
  'Dr. Smith (née Jones) paid $1,234.56 for 3.5 kg of coffee — a 12% increase vs. 2023!',
  'Hello, world!\nThis is a new line.\r\nWindows line.\tTabbed.',
  '深度求索（DeepSeek）是一家专注于人工智能基础技术研究的公司。我们的目标是探索通用人工智能。',
  '今日は良い天気ですね。カタカナとひらがなと漢字が混ざっています。ｶﾀｶﾅ半角も。',
  '한국어 문장도 토큰화해야 합니다. 안녕하세요, 세계!',
  'Привет, мир! Съешь же ещё этих мягких французских булок, да выпей чаю.',
  'Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. Γειά σου κόσμε!',
  'مرحبا بالعالم! هذه جملة باللغة العربية مع أرقام ١٢٣٤٥ و 678.',
  'שלום עולם! זהו משפט בעברית.',
  'नमस्ते दुनिया! यह हिन्दी में एक वाक्य है। संख्या: १२३४',
  'สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่างระหว่างคำ',
  'Tiếng Việt có nhiều dấu: Trời hôm nay đẹp quá!',
  'Ełk, Łódź, Kraków — zażółć gęślą jaźń. Ærøskøbing. Straße. Œuvre.',
  'ግዕዝ ፊደል። Ge\'ez script. ᚠᚢᚦᚨᚱᚲ runes. ꦗꦮ Javanese.',
  'தமிழ் மொழி. తెలుగు భాష. ಕನ್ನಡ. മലയാളം. বাংলা ভাষা. ગુજરાતી. ਪੰਜਾਬੀ.',
  'Զարթնիր, Armenian. ქართული ენა. Монгол хэл. ᠮᠣᠩᠭᠣᠯ.',
];
const CODE = [
  'def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n',
  'import numpy as np\n\n\ndef normalize(x):\n    """Normalize x."""\n    return x / np.linalg.norm(x, axis=-1, keepdims=True)\n',
  '#include <vector>\nint main(int argc, char** argv) {\n  std::vector<int> v{1, 2, 3};\n  for (auto& x : v) x *= 2;\n  return v.size() > 2 ? 0 : 1;\n}\n',
  'const f = async (a, b) => { await fetch(`/api/${a}?q=${b}`); return a ?? b; };\n',
  'fn main() -> Result<(), Box<dyn Error>> {\n    let x: Vec<u8> = vec![0xFF; 16];\n    println!("{:?}", x);\n    Ok(())\n}\n',
  '{"name": "moert", "version": "0.1.0", "deps": {"a": [1, 2.5, -3e10, true, null]}}',
  '<html><head><title>T&amp;T</title></head><body class="x y">\n  <p>Hi</p>\n</body></html>',
  'SELECT id, COUNT(*) FROM users WHERE name LIKE \'%a%\' GROUP BY id HAVING COUNT(*) > 1;',
  '    \t\tmixed indentation\n\t    more\n',
  'x+=1;y-=2;z*=3;w/=4;a**=b;c//=d;e%=f;g<<=h;i>>=j;k&=l;m|=n;o^=p;',
  '// comment with émojis 🚀 and 中文\n/* block */ #define MAX(a,b) ((a)>(b)?(a):(b))',
  '$ ls -la /usr/local/bin | grep -E "^d" && echo "done" || exit 1',
];
const SPECIAL_LIKE = [
  '<｜begin▁of▁sentence｜>', '<｜end▁of▁sentence｜>', '<｜User｜>', '<｜Assistant｜>', '<|EOT|>',
  '<｜tool▁calls▁begin｜>', '<｜tool▁sep｜>', '<｜fim▁hole｜>', '<｜place▁holder▁no▁42｜>', '<think>', '</think>',
  '<｜User', '｜>', '<|User|>', '<｜user｜>', '<｜begin▁of▁sentence', '<<｜User｜>>', '<｜<｜User｜>｜>',
  '<｜▁pad▁｜>', '<lstrip>', '<rstrip>', 'word', 'words', '~norm', 'both', '``', '‘quoted’',
];
const WS = [' ', '  ', '   ', '\t', '\n', '\r\n', '\n\n', ' \n ', '\u00a0', '\u3000', '\u2028', '\u2029', '\u180e',
  '\u200b', '\u2009', '\u202f', '\u205f', '\u0085', '\u000b', '\u000c', '\r', '\u1680', '\u2000', '\ufeff'];
const EMOJI = ['😀', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇺🇸', '🇯🇵', '1️⃣', '❤️', '🧑🏾‍💻', '👩‍❤️‍💋‍👨', '🫠', '🦀', '✅', '™', '©',
  '\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}'];
const NUMS = ['0', '7', '42', '123', '1234', '12345', '1234567890', '3.14159', '-0.5e-10', '1,000,000', '٠١٢٣٤٥',
  '१२३', '½', '¾', 'Ⅻ', '①②③', '１２３４', '²³', '0x1F', '1e100', '๓๔๕', '𝟙𝟚𝟛'];
const CONTROL = [];
for (let c = 0; c < 32; ++c) CONTROL.push(cp(c));
CONTROL.push('\u007f', '\u0085', '\u200d', '\u200e', '\u2066', '\ufffd', '\ufe0f', '\u0301', '\u0300\u0301\u0302');

// Code point blocks for random strings (assigned in Unicode 14, the version of the PCRE2 tables).
const BLOCKS = [[0x20, 0x7e], [0xa0, 0x24f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x5ff], [0x600, 0x6ff],
  [0x900, 0x97f], [0xe00, 0xe5b], [0x1100, 0x11ff], [0x2000, 0x206f], [0x2100, 0x214f], [0x2190, 0x23ff],
  [0x2500, 0x27bf], [0x3000, 0x30ff], [0x4e00, 0x9fa5], [0xac00, 0xd7a3], [0xff00, 0xffef], [0x1f300, 0x1f5ff],
  [0x1f900, 0x1f9ff], [0x1d400, 0x1d4ff], [0x0300, 0x036f], [0x0e80, 0x0eff]];
function randomBlockString(n) {
  let s = '';
  for (let i = 0; i < n; ++i) {
    const [a, b] = pick(BLOCKS);
    s += cp(a + ri(b - a + 1));
  }
  return s;
}
function randomWordsText(n) {
  const words = ['the', 'of', 'and', 'model', 'token', 'expert', 'attention', 'cache', 'latent', 'router',
    'Hello', 'World', 'DeepSeek', 'MoE', 'MLA', 'x', 'I', 'a', "don't", 'we\'re', 'it\'s', 'naïve', 'café',
    'über', 'speed', '速度', '模型', 'トークン', 'данные', 'λόγος', 'كلمة', 'शब्द', 'คำ'];
  let s = '';
  for (let i = 0; i < n; ++i) {
    s += pick(words);
    const r = rnd();
    s += r < 0.75 ? ' ' : r < 0.85 ? ', ' : r < 0.92 ? '. ' : r < 0.96 ? '\n' : pick(WS);
  }
  return s;
}
function fragment() {
  const r = rnd();
  if (r < 0.18) return pick(PROSE);
  if (r < 0.3) return pick(CODE);
  if (r < 0.42) return pick(SPECIAL_LIKE);
  if (r < 0.52) return pick(WS).repeat(1 + ri(4));
  if (r < 0.62) return pick(EMOJI).repeat(1 + ri(3));
  if (r < 0.72) return pick(NUMS);
  if (r < 0.78) return pick(CONTROL);
  if (r < 0.9) return randomBlockString(1 + ri(12));
  return randomWordsText(1 + ri(20));
}
function mixedText() {
  let s = '';
  const n = 1 + ri(8);
  for (let i = 0; i < n; ++i) s += fragment();
  return s;
}

function buildTexts(count, longDocs) {
  const texts = [];
  // Curated singles.
  for (const a of [PROSE, CODE, SPECIAL_LIKE, WS, EMOJI, NUMS, CONTROL]) for (const t of a) texts.push(t);
  for (const w of WS) texts.push('a' + w + 'b', w + 'x', 'x' + w, w + w + '!');
  // Very long words and runs (exercise the heap merge path and the regex on long inputs).
  texts.push('a'.repeat(1000), 'ab'.repeat(700), 'supercalifragilisticexpialidocious'.repeat(30));
  texts.push('9'.repeat(500), '1234567890'.repeat(50), '中文'.repeat(300), ' '.repeat(300), '\n'.repeat(100));
  texts.push('!'.repeat(200), '-'.repeat(120) + '\n', '='.repeat(64), '😀'.repeat(100), '\t'.repeat(50) + 'x');
  let w = '';
  for (let i = 0; i < 3000; ++i) w += String.fromCharCode(97 + ri(26));
  texts.push(w);
  texts.push(randomBlockString(2000));
  for (let i = 0; i < count; ++i) texts.push(mixedText());
  for (let i = 0; i < longDocs; ++i) {
    let d = '';
    while (d.length < 6000) d += (rnd() < 0.5 ? pick(PROSE) + ' ' : '') + (rnd() < 0.3 ? pick(CODE) : randomWordsText(40));
    texts.push(d);
  }
  return texts;
}

// ------------------------------------------------------------------------------------------- encode
async function encodeAll(tokPath, texts, extra) {
  const tok = await Tokenizer.fromFile(tokPath);
  const out = [];
  for (const t of texts) {
    const ids = (await tok.encode(t, null, {addSpecialTokens: false})).getIds();
    const c = {text: t, ids: Array.from(ids)};
    out.push(c);
  }
  if (extra) await extra(tok, out);
  return out;
}
// tokPath: the tokenizer without its special tokens. HF gives the remaining added tokens new ids when the
// removed ones leave gaps, so their ids are mapped back to the original tokenizer's by content.
async function addNoSpecial(tokPath, origPath, cases) {
  const tok = await Tokenizer.fromFile(tokPath);
  const orig = await Tokenizer.fromFile(origPath);
  const map = new Map();
  for (const a of readJson(tokPath).added_tokens) map.set(tok.tokenToId(a.content), orig.tokenToId(a.content));
  for (const c of cases) {
    const raw = Array.from((await tok.encode(c.text, null, {addSpecialTokens: false})).getIds());
    const ids = raw.map((id) => (map.has(id) ? map.get(id) : id));
    if (JSON.stringify(ids) !== JSON.stringify(c.ids)) c.ids_no_special = ids;
  }
}
async function addDecodes(tok, cases) {
  for (const c of cases) {
    const d = await tok.decode(c.ids, false);
    if (d !== c.text) c.decoded = d;  // only stored when it differs from the text
    const ds = await tok.decode(c.ids, true);
    if (ds !== (c.decoded === undefined ? c.text : c.decoded)) c.decoded_skip_special = ds;
  }
}
async function randomDecodes(tokPath, n, maxTok) {
  const tok = await Tokenizer.fromFile(tokPath);
  const out = [];
  for (let i = 0; i < n; ++i) {
    const len = 1 + ri(12);
    const ids = [];
    for (let k = 0; k < len; ++k) {
      const r = rnd();
      ids.push(r < 0.1 ? maxTok - ri(820) : r < 0.15 ? ri(3) : ri(Math.min(maxTok, 128000)));
    }
    out.push({ids, decoded: await tok.decode(ids, false), decoded_skip_special: await tok.decode(ids, true)});
  }
  return out;
}
function writeJsonl(name, rows) {
  const p = path.join(HERE, name);
  fs.writeFileSync(p, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  console.log(name, rows.length, 'rows', fs.statSync(p).size, 'bytes');
}

// ------------------------------------------------------------------------------------------- chat
const {Template} = require('@huggingface/jinja');
const V3_CFG = readJson(path.join(V3_DIR, 'tokenizer_config.json'));
// The same edits as runtime/tokenizer/chat_template.cpp (deepseek_chat_template).
const EDITS = {
  system: ["{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}{%- else %}{% set ns.system_prompt = ns.system_prompt + '\n\n' + message['content'] %}{%- endif %}{%- endif %}{%- endfor %}",
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}"],
  strip: ["{%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- endif %}",
    "{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}"],
  think: ["{{'<｜Assistant｜>'}}{% endif %}", "{{'<｜Assistant｜><think>\n'}}{% endif %}"],
};
function variantTemplate(joinSystem, strip, think) {
  let t = V3_CFG.chat_template;
  const rep = (pair) => {
    if (t.split(pair[0]).length !== 2) throw new Error('edit anchor not unique: ' + pair[0]);
    t = t.replace(pair[0], () => pair[1]);
  };
  if (!joinSystem) rep(EDITS.system);
  if (strip) rep(EDITS.strip);
  if (think) rep(EDITS.think);
  return t;
}
function tc(name, args) {
  return {type: 'function', function: {name, arguments: JSON.stringify(args)}};
}
function chatConversations() {
  const convs = [];
  convs.push([{role: 'user', content: 'Hi'}]);
  convs.push([{role: 'system', content: 'S1'}, {role: 'user', content: 'u'}, {role: 'system', content: 'S2'}]);
  convs.push([{role: 'user', content: 'Solve 2+2'}, {role: 'assistant', content: '<think>\n2+2=4\n</think>\n\nIt is 4.'},
    {role: 'user', content: 'And 3+3?'}]);
  convs.push([{role: 'user', content: 'x'}, {role: 'assistant', content: 'a</think>b</think>c'}]);
  convs.push([{role: 'user', content: 'Two tools'}, {role: 'assistant', content: null, tool_calls: [tc('f', {a: 1}), tc('g', {b: '中文'})]},
    {role: 'tool', content: 'r1'}, {role: 'tool', content: 'r2'}, {role: 'assistant', content: 'done'}]);
  convs.push([{role: 'user', content: 'q'}, {role: 'assistant', content: null, tool_calls: [tc('a', {})]},
    {role: 'tool', content: 'o'}, {role: 'user', content: 'again'}, {role: 'assistant', content: null, tool_calls: [tc('b', {x: [1, 2]})]},
    {role: 'tool', content: 'p'}]);
  convs.push([{role: 'developer', content: 'ignored'}, {role: 'user', content: ''}, {role: 'assistant', content: ''}]);
  convs.push([{role: 'user', content: 'emoji 👨‍👩‍👧 and <｜User｜> inside'}, {role: 'assistant', content: 'ok\n\n'}]);
  convs.push([{role: 'system', content: ''}, {role: 'system', content: ''}, {role: 'user', content: 'empty systems'}]);
  // (An assistant message with content null and no tool_calls renders nothing in Python's jinja2, but
  // @huggingface/jinja refuses to iterate the undefined tool_calls; tokenizer_test.cpp checks that case.)
  // Random conversations.
  for (let i = 0; i < 14; ++i) {
    const c = [];
    const n = 1 + ri(7);
    for (let k = 0; k < n; ++k) {
      const r = rnd();
      if (r < 0.15) c.push({role: 'system', content: mixedText()});
      else if (r < 0.5) c.push({role: 'user', content: mixedText()});
      else if (r < 0.75) c.push({role: 'assistant', content: (rnd() < 0.4 ? '<think>' + mixedText() + '</think>' : '') + mixedText()});
      else if (r < 0.87) c.push({role: 'assistant', content: null, tool_calls: Array.from({length: 1 + ri(3)}, () => tc('fn' + ri(9), {q: mixedText()}))});
      else c.push({role: 'tool', content: mixedText()});
    }
    convs.push(c);
  }
  return convs;
}
async function chatCases(v3Path) {
  const tok = await Tokenizer.fromFile(v3Path);
  const rows = [];
  const convs = chatConversations();
  for (let bits = 0; bits < 8; ++bits) {
    const joinSystem = (bits & 1) === 0, strip = (bits & 2) !== 0, think = (bits & 4) !== 0;
    const tpl = new Template(variantTemplate(joinSystem, strip, think));
    convs.forEach((messages, i) => {
      if (bits !== 0 && bits !== 6 && i % 6 !== 0) return;  // V3 and R1 on every conversation
      for (const gen of [true, false]) {
        const rendered = tpl.render({messages, add_generation_prompt: gen, bos_token: '<｜begin▁of▁sentence｜>'});
        rows.push({variant: {join_system: joinSystem, strip_reasoning: strip, think_generation: think},
          messages, add_generation_prompt: gen, rendered});
      }
    });
  }
  for (const r of rows) r.ids = Array.from((await tok.encode(r.rendered, null, {addSpecialTokens: false})).getIds());
  return rows;
}

(async () => {
  const v3Path = path.join(V3_DIR, 'tokenizer.json');
  const tinyPath = path.join(TINY_DIR, 'tokenizer.json');
  const v3NoSpecial = writeTmp('v3-nospecial', withoutSpecial(readJson(v3Path)));
  const tinyNoSpecial = writeTmp('tiny-nospecial', withoutSpecial(readJson(tinyPath)));
  const v2Path = writeTmp('v2style', makeV2Style());
  const gpt2 = makeGpt2Style();
  const gpt2Path = writeTmp('gpt2style', gpt2);
  const gpt2NoSpecial = writeTmp('gpt2style-nospecial', withoutSpecial(gpt2));

  const v3 = await encodeAll(v3Path, buildTexts(1000, 30), addDecodes);
  await addNoSpecial(v3NoSpecial, v3Path, v3);
  writeJsonl('deepseek_v3_cases.jsonl', v3);
  writeJsonl('deepseek_v3_decode_cases.jsonl', await randomDecodes(v3Path, 400, 128815));

  seed = 0x7111c0de;
  const tiny = await encodeAll(tinyPath, buildTexts(300, 4), addDecodes);
  await addNoSpecial(tinyNoSpecial, tinyPath, tiny);
  writeJsonl('tiny_coder_cases.jsonl', tiny);

  seed = 0x0000f2f2;
  const v2 = await encodeAll(v2Path, buildTexts(300, 3), addDecodes);
  await addNoSpecial(writeTmp('v2style-nospecial', withoutSpecial(makeV2Style())), v2Path, v2);
  writeJsonl('v2style_cases.jsonl', v2);
  seed = 0x00006262;
  const g = await encodeAll(gpt2Path, buildTexts(300, 3), addDecodes);
  await addNoSpecial(gpt2NoSpecial, gpt2Path, g);
  writeJsonl('gpt2style_cases.jsonl', g);

  seed = 0x000c4a7;
  writeJsonl('chat_template_cases.jsonl', await chatCases(v3Path));
})().catch((e) => { console.error(e); process.exit(1); });
