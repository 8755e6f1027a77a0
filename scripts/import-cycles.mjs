#!/usr/bin/env node
// Fails when the modules of a library crate import each other in a circle: a module may use its ancestors' items
// (the module tree is the hierarchy), but between the rest, `use crate::…`, `use super::…` and `use self::…` lines
// must form no cycle, so that each file can be read knowing only what it imports.
// Usage: node scripts/import-cycles.mjs [crate-dir …] (default: every crate under crates/). Test code is left out.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function rustFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) return rustFiles(p);
    return name.endsWith('.rs') ? [p] : [];
  });
}

/** The modules of the crate whose sources are in `src`: path (`a::b`, '' for the root) → file. */
function modules(src) {
  const found = new Map();
  for (const file of rustFiles(src)) {
    const parts = path.relative(src, file).slice(0, -3).split(path.sep);
    if (['mod', 'lib'].includes(parts.at(-1))) parts.pop();
    found.set(parts.join('::'), file);
  }
  return found;
}

/** The module that `use` path `target` names from module `from`: the longest prefix that is a module. */
function resolve(mods, from, target) {
  const segs = target.split('::');
  let base = from ? from.split('::') : [];
  const isDir = /(^|[/\\])(mod|lib)\.rs$/.test(mods.get(from));
  if (segs[0] === 'crate') base = [];
  else if (segs[0] === 'self' || segs[0] === 'super') {
    if (!isDir) base = base.slice(0, -1);
    if (segs[0] === 'self') segs.shift();
    while (segs[0] === 'super') { base = base.slice(0, -1); segs.shift(); }
  } else return undefined;
  if (segs[0] === 'crate') segs.shift();
  let best;
  for (let i = 0; i <= segs.length; i++) {
    const name = [...base, ...segs.slice(0, i)].join('::');
    if (mods.has(name)) best = name;
  }
  return best;
}

function edges(mods) {
  const graph = new Map([...mods.keys()].map((m) => [m, new Set()]));
  for (const [mod, file] of mods) {
    // Unit tests (`#[cfg(test)] mod tests`) may import what they like.
    const text = readFileSync(file, 'utf8').split(/#\[cfg\(test\)\]\s*mod \w+/)[0];
    for (const [, head, group] of text.matchAll(/\buse\s+((?:crate|super|self)(?:::\w+)*)(?:::\{([^;]*)\})?/g)) {
      const targets = [head];
      for (const item of (group ?? '').split(',')) {
        const name = item.trim().split(/\s+as\s+/)[0].split('::{')[0].replace(/[{}]/g, '');
        if (name && name !== 'self') targets.push(`${head}::${name}`);
      }
      for (const target of targets) {
        const to = resolve(mods, mod, target);
        const ancestor = to !== undefined && (to === '' || mod.startsWith(`${to}::`));
        if (to !== undefined && to !== mod && !ancestor) graph.get(mod).add(to);
      }
    }
  }
  return graph;
}

/** Strongly connected components of more than one module (Tarjan). */
function cycles(graph) {
  let next = 0;
  const index = new Map(), low = new Map(), stack = [], onStack = new Set(), found = [];
  const visit = (v) => {
    index.set(v, next); low.set(v, next); next++;
    stack.push(v); onStack.add(v);
    for (const w of graph.get(v)) {
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v), low.get(w))); }
      else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
    }
    if (low.get(v) === index.get(v)) {
      const component = [];
      let w;
      do { w = stack.pop(); onStack.delete(w); component.push(w); } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

const crates = process.argv.length > 2
  ? process.argv.slice(2)
  : readdirSync(path.join(repoRoot, 'crates')).map((c) => path.join(repoRoot, 'crates', c));
let failed = false;
for (const crate of crates) {
  const mods = modules(path.join(crate, 'src'));
  for (const cycle of cycles(edges(mods))) {
    failed = true;
    console.error(`${path.relative(repoRoot, path.resolve(crate))}: modules import each other in a circle: ${cycle.join(' → ')}`);
  }
}
if (failed) process.exit(1);
console.log(`no import circles in ${crates.map((c) => path.basename(c)).join(', ')}`);
