// Gives the client's error texts back their words: with the feature `short-texts` (scripts/lib.sh's
// build_wasm_client), each `text!("…")` of the Rust sources is compiled into the .wasm as U+FDD0 and a code of 4
// base-32 digits (crates/protocol/src/text.rs), 7 bytes instead of the words. This script finds every `text!("…")`
// in the client's crates, computes the same code (the low 20 bits of the text's FNV-1a hash), and puts one table of
// codes and words in each glue file, with a second decoder of strings from the .wasm (`getTextFromWasm0`) that
// replaces each marked code by its words. Only the few places where a string becomes a message use it (`sites`
// below): a page and a Node program read the same messages as a build without the feature, while everything else
// (keys, values, members, JSON, what the client sends) still goes through wasm-bindgen's own decoder, untouched,
// so data that holds U+FDD0 and a code arrives as Redis holds it.
// Usage: node scripts/wasm-texts.mjs FILE.wasm GLUE.js... — fails (and the build with it) on two texts with one code,
// on a code in FILE.wasm that no `text!` gives, or on glue whose decoder or message sites no longer read as expected.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [wasmFile, ...glues] = process.argv.slice(2);
if (!wasmFile || glues.length === 0) {
  console.error('usage: wasm-texts.mjs FILE.wasm GLUE.js...');
  process.exit(2);
}
const fail = (message) => {
  console.error(`wasm-texts.mjs: ${message}`);
  process.exit(1);
};

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const sources = ['crates/protocol/src', 'crates/assembler/src', 'wasm/src'];
const rustFiles = (dir) =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return rustFiles(path);
    return path.endsWith('.rs') ? [path] : [];
  });

// A Rust string literal's text: the escapes the sources use, and no others.
const unescape = (literal, where) =>
  literal.replace(/\\(.)/g, (_, c) => {
    const escapes = { '"': '"', "'": "'", '\\': '\\', n: '\n', t: '\t' };
    if (!(c in escapes)) fail(`${where}: an escape \\${c} this script does not read`);
    return escapes[c];
  });

const DIGITS = '0123456789abcdefghijklmnopqrstuv';
const code = (text) => {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  let out = '';
  for (let d = 3; d >= 0; d--) out += DIGITS[(hash >>> (5 * d)) & 31];
  return out;
};

const texts = new Map();
for (const file of sources.flatMap((dir) => rustFiles(join(repo, dir)))) {
  const source = readFileSync(file, 'utf8');
  for (const match of source.matchAll(/\btext!\(\s*"((?:[^"\\]|\\.)*)"\s*\)/g)) {
    const text = unescape(match[1], file);
    const c = code(text);
    if (texts.has(c) && texts.get(c) !== text) fail(`"${texts.get(c)}" and "${text}" have one code, ${c}`);
    texts.set(c, text);
  }
}
if (texts.size === 0) fail(`no text!("…") found under ${sources.join(', ')}`);

// Every code the .wasm holds must have its words.
const marker = '\u{FDD0}';
const wasm = readFileSync(wasmFile).toString('latin1');
const markerBytes = Buffer.from(marker, 'utf8').toString('latin1');
let found = 0;
for (let at = wasm.indexOf(markerBytes); at >= 0; at = wasm.indexOf(markerBytes, at + 1)) {
  const c = wasm.slice(at + markerBytes.length, at + markerBytes.length + 4);
  if (!texts.has(c)) fail(`${wasmFile} holds the code ${JSON.stringify(c)}, which no text!("…") gives`);
  found++;
}
if (found === 0) fail(`${wasmFile} holds no text's code: was it built with the feature short-texts?`);

const table = JSON.stringify(Object.fromEntries([...texts].sort(([a], [b]) => (a < b ? -1 : 1))));
// The glue's decoder of strings from the .wasm, which stays as wasm-bindgen wrote it: it carries data.
const decoder = `function getStringFromWasm0(ptr, len) {
    ptr = ptr >>> 0;
    return decodeText(getUint8ArrayMemory0().subarray(ptr, ptr + len));
}`;
const expanding = `${decoder}
// The words of the error texts the .wasm holds as U+FDD0 and a code, for messages only (scripts/wasm-texts.mjs).
const TEXTS = ${table};
function getTextFromWasm0(ptr, len) {
    const text = getStringFromWasm0(ptr, len);
    return text.includes('\\uFDD0') ? text.replace(/\\uFDD0([0-9a-v]{4})/g, (code, c) => TEXTS[c] ?? code) : text;
}`;
// Where a string from the .wasm becomes a message: an Error made by wasm-bindgen's JsError::new, by js_sys's
// Error::new and by wasm_bindgen::throw_str, and the client's import of `String` for its other messages (the
// console's, the diagnostics' lastError: wasm/src/web/error.rs, `words`). Each must be found once in each glue
// file, and no other `Error(` or `String(` of a string from the .wasm: a message that reached the page another way
// would keep its code, and data read here would lose its bytes.
const sites = [
  'const ret = Error(getStringFromWasm0(arg0, arg1));',
  'const ret = new Error(getStringFromWasm0(arg0, arg1));',
  'throw new Error(getStringFromWasm0(arg0, arg1));',
  'const ret = String(getStringFromWasm0(arg0, arg1));',
];
for (const glue of glues) {
  let js = readFileSync(glue, 'utf8');
  const count = (text) => js.split(text).length - 1;
  if (count(decoder) !== 1) fail(`${glue}: its string decoder found ${count(decoder)} times, expected 1`);
  for (const site of sites) {
    if (count(site) !== 1) fail(`${glue}: \`${site}\` found ${count(site)} times, expected 1`);
    js = js.replace(site, () => site.replace('getStringFromWasm0', 'getTextFromWasm0'));
  }
  const other = js.match(/.*\b(?:Error|String)\(getStringFromWasm0\(.*/);
  if (other) fail(`${glue}: a message from the .wasm this script does not know: ${other[0].trim()}`);
  writeFileSync(glue, js.replace(decoder, () => expanding));
}
console.log(`wasm-texts.mjs: ${texts.size} texts, ${found} codes in ${wasmFile}, ${glues.length} glue files`);
