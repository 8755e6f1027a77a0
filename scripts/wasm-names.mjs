// Gives the client's .wasm short import and export names, and its wasm-bindgen glue the same names.
// Usage: node scripts/wasm-names.mjs FILE.wasm GLUE.js... — FILE.wasm is rewritten in place by wasm-opt's
// `--minify-imports-and-exports-and-modules`, and each glue file (the `web` and `nodejs` builds' .js, with its .d.ts
// beside it where that declares `InitOutput`) is rewritten to match.
//
// Why: wasm-bindgen names each import `__wbg_<name>_<16 hex digits of hash>` of module `./replicast_wasm_bg.js`,
// and each closure's export after its Rust path (`wasm_bindgen_<hash>___convert__closures_____invoke___…`): 2.7 KB
// of the gzipped .wasm (docs/BENCHMARKS.md), hashes that compress not at all. The glue only ever names them in
// three places, which this script rewrites and counts: the keys of the import object (`__wbg_…: function`), its
// module (`"./replicast_wasm_bg.js": import0`), and `wasm.<export>`; a name found anywhere else, or not found
// where it must be, stops the build instead of shipping glue that does not match its .wasm.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [wasmFile, ...glues] = process.argv.slice(2);
if (!wasmFile || glues.length === 0) {
  console.error('usage: wasm-names.mjs FILE.wasm GLUE.js...');
  process.exit(2);
}
const fail = (message) => {
  console.error(`wasm-names.mjs: ${message}`);
  process.exit(1);
};

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const before = WebAssembly.Module.imports(new WebAssembly.Module(readFileSync(wasmFile)));
const oldModules = new Set(before.map((i) => i.module));
if (oldModules.size !== 1) fail(`expected the imports of one module, found ${[...oldModules].join(', ')}`);
const [oldModule] = oldModules;

// wasm-opt prints the renaming as JSON: imports as [module, old name, new name], exports as [old name, new name].
const printed = execFileSync(
  join(repo, 'node_modules/.bin/wasm-opt'),
  ['--minify-imports-and-exports-and-modules', wasmFile, '-o', wasmFile],
  { encoding: 'utf8', maxBuffer: 1 << 26 },
);
const { imports, exports } = JSON.parse(printed);
const after = WebAssembly.Module.imports(new WebAssembly.Module(readFileSync(wasmFile)));
const newModules = new Set(after.map((i) => i.module));
if (newModules.size !== 1) fail(`expected one module after minifying, found ${[...newModules].join(', ')}`);
const [newModule] = newModules;
if (imports.length !== before.length) fail(`wasm-opt renamed ${imports.length} of ${before.length} imports`);

const renamed = new Map(exports);
const escape = (s) => s.replace(/[$]/g, '\\$&');
const property = (name) => (/^[A-Za-z_$][\w$]*$/.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`);

// Replaces every match of `pattern` in `text` by `replacement`, failing unless there were `count` of them (or at
// least one, for `count` undefined).
function replace(text, pattern, replacement, count, what) {
  let n = 0;
  const out = text.replace(pattern, (...match) => {
    n++;
    return typeof replacement === 'function' ? replacement(...match) : replacement;
  });
  if (count === undefined ? n === 0 : n !== count) fail(`${what}: found ${n} times, expected ${count ?? 'some'}`);
  return out;
}

for (const glue of glues) {
  let js = readFileSync(glue, 'utf8');
  js = replace(js, new RegExp(`^(\\s*)${JSON.stringify(oldModule)}: import0,$`, 'gm'),
    (_, indent) => `${indent}${JSON.stringify(newModule)}: import0,`, 1, `${glue}: the imports' module`);
  for (const [, oldName, newName] of imports) {
    js = replace(js, new RegExp(`^(\\s*)${escape(oldName)}: function`, 'gm'),
      (_, indent) => `${indent}${JSON.stringify(newName)}: function`, 1, `${glue}: import ${oldName}`);
  }
  // Every `wasm.<name>` must be an export, renamed in one pass (so a new name is never taken for an old one); an
  // export the glue never calls is left alone.
  js = js.replace(/\bwasm\.([A-Za-z_$][\w$]*)/g, (_, name) => {
    if (!renamed.has(name)) fail(`${glue}: wasm.${name} is no export of the .wasm`);
    return `wasm${property(renamed.get(name))}`;
  });
  if (/\bwasm\s*\[/.test(js)) fail(`${glue}: names an export as wasm[…], which this script does not rewrite`);
  writeFileSync(glue, js);

  // The web build's types declare what `init()` returns, the .wasm's exports by name.
  const types = glue.replace(/\.js$/, '.d.ts');
  if (!existsSync(types)) continue;
  const dts = readFileSync(types, 'utf8');
  const block = /^export interface InitOutput \{\n[\s\S]*?^\}\n/m.exec(dts);
  if (!block) continue;
  const body = block[0].replace(/^(\s*readonly )([\w$]+):/gm, (_, head, name) => {
    if (!renamed.has(name)) fail(`${types}: InitOutput's ${name} is no export of the .wasm`);
    return `${head}${JSON.stringify(renamed.get(name))}:`;
  });
  writeFileSync(types, dts.slice(0, block.index) + body + dts.slice(block.index + block[0].length));
}
