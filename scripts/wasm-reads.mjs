// Gives the client's `Replicast` its read methods from `Assembler`: the read API (wasm/src/web/reads.rs,
// `read_api!`) is exported once, on `Assembler`, and `Replicast` exports `__reads`, an `Assembler` that reads the
// client's own windows. Each wasm-bindgen export costs a shim in the .wasm, so the 21 reads exported twice cost
// about 1 KB of the gzipped file (docs/BENCHMARKS.md). This script puts in each glue file the reads on
// `Replicast.prototype`, each calling `Assembler`'s on the client's `__reads()` (made once per client, freed with
// it), and into each `.d.ts` beside a glue file `Replicast`'s declarations of them, copied from `Assembler`'s with
// their documentation: the JavaScript API and its types are what they were when both classes exported the reads.
// Usage: node scripts/wasm-reads.mjs GLUE.js... — fails (and the build with it) when a read is not in
// `Assembler`'s declarations, already in `Replicast`'s, or the glue does not define both classes as expected.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const glues = process.argv.slice(2);
if (glues.length === 0) {
  console.error('usage: wasm-reads.mjs GLUE.js...');
  process.exit(2);
}
const fail = (message) => {
  console.error(`wasm-reads.mjs: ${message}`);
  process.exit(1);
};

// The reads' JavaScript names, from `read_api!`: a `js_name` where it has one, else the Rust name.
const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = readFileSync(join(repo, 'wasm/src/web/reads.rs'), 'utf8');
const api = /macro_rules! read_api \{([\s\S]*?)\n\}/.exec(source)?.[1] ?? fail('no read_api! in reads.rs');
const reads = [...api.matchAll(/(?:#\[wasm_bindgen\(([^\]]*)\)\]\s*)?pub fn (\w+)/g)].map(
  ([, attributes, name]) => /js_name = (\w+)/.exec(attributes ?? '')?.[1] ?? name,
);
if (reads.length === 0) fail('no reads found in read_api!');

// A class's body in a .d.ts as its members: each the lines of its doc comment and its declaration.
function members(body) {
  const out = [];
  let lines = [];
  for (const line of body.split('\n')) {
    lines.push(line);
    if (/^ {4}[^ /*].*;$/.test(line)) {
      const name = /^ {4}(?:readonly )?([\w[\].]+)[(:]/.exec(line)?.[1] ?? line.trim();
      out.push({ name, getter: line.startsWith('    readonly '), text: lines.join('\n') });
      lines = [];
    }
  }
  if (lines.join('').trim() !== '') fail(`a class body ends in something not a member: ${lines.join('\n')}`);
  return out;
}

function declarations(types, file) {
  const classBody = (name) => {
    const match = new RegExp(`^export class ${name} \\{\\n([\\s\\S]*?)\\n\\}`, 'm').exec(types);
    if (!match) fail(`${file}: no class ${name}`);
    return match;
  };
  const assembler = new Map(members(classBody('Assembler')[1]).map((m) => [m.name, m]));
  const replicast = classBody('Replicast');
  const ours = members(replicast[1]);
  for (const read of reads) {
    const member = assembler.get(read) ?? fail(`${file}: Assembler declares no ${read}`);
    if (ours.some((m) => m.name === read)) fail(`${file}: Replicast already declares ${read}`);
    // Among Replicast's methods (or getters) in name order, as wasm-bindgen lists them.
    const at = ours.findIndex(
      (m) => m.getter === member.getter && !['free', 'constructor', '[Symbol.dispose]'].includes(m.name) && m.name > read,
    );
    const last = ours.findLastIndex((m) => m.getter === member.getter);
    ours.splice(at >= 0 ? at : last + 1, 0, member);
  }
  const start = replicast.index + replicast[0].indexOf('{\n') + 2;
  return types.slice(0, start) + ours.map((m) => m.text).join('\n') + types.slice(start + replicast[1].length);
}

const glueCode = `
// Replicast's reads are Assembler's, called on an Assembler that reads the client's windows (scripts/wasm-reads.mjs).
for (const name of ${JSON.stringify(reads)}) {
    const { get, value } = Object.getOwnPropertyDescriptor(Assembler.prototype, name);
    const read = (f) => function (...args) { return f.apply(this.__r ??= this.__reads(), args); };
    Object.defineProperty(Replicast.prototype, name, get ? { get: read(get), configurable: true } : { value: read(value), writable: true, configurable: true });
}
const freeReplicast = Replicast.prototype.free;
Replicast.prototype.free = function () {
    this.__r?.free();
    this.__r = undefined;
    freeReplicast.call(this);
};
if (Symbol.dispose) Replicast.prototype[Symbol.dispose] = Replicast.prototype.free;
`;
for (const glue of glues) {
  const js = readFileSync(glue, 'utf8');
  for (const needed of [/^(export )?class Assembler \{$/m, /^(export )?class Replicast \{$/m, /^ {4}__reads\(\) \{$/m]) {
    if (!needed.test(js)) fail(`${glue}: no ${needed.source}`);
  }
  writeFileSync(glue, js + glueCode);
  const types = glue.replace(/\.js$/, '.d.ts');
  if (existsSync(types)) writeFileSync(types, declarations(readFileSync(types, 'utf8'), types));
}
console.log(`wasm-reads.mjs: ${reads.length} reads given to Replicast in ${glues.length} glue files`);
