#!/usr/bin/env node
// The top-level module graph of the core crate, from the `crate::<module>` paths its code names
// (use lines and inline paths; comments, doc comments and `#[cfg(test)]` modules at the bottom
// of a file are not dependencies). Prints every module with the modules it uses, and a layering
// from the bottom up; exits 1 when two modules depend on each other, directly or through others
// (STYLE.md: modules depend only downwards).
//
//   node scripts/module-graph.mjs [crates/core/src]
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";

const src = process.argv[2] ?? join(new URL("..", import.meta.url).pathname, "crates", "core", "src");

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : name.endsWith(".rs") ? [path] : [];
  });
}

/** The top-level module a file belongs to (`erofs` for `erofs/writer.rs`), or null for lib.rs. */
function moduleOf(path) {
  const rel = relative(src, path).split(sep);
  if (rel.length === 1) return rel[0] === "lib.rs" ? null : rel[0].replace(/\.rs$/, "");
  return rel[0];
}

/** The code of a file without comments and without its test module (from `#[cfg(test)]` on). */
function code(text) {
  const lines = text.split("\n");
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const trimmed = line.trim();
    // A test module: `#[cfg(test)]`, maybe more attributes, then `mod`; it runs to the end of
    // the file (the project keeps unit tests at the bottom of the file they test).
    if (trimmed === "#[cfg(test)]") {
      let j = i + 1;
      while (j < lines.length && lines[j].trim().startsWith("#[")) j++;
      if (j < lines.length && /^(pub(\([a-z]+\))? )?mod \w+/.test(lines[j].trim())) break;
    }
    if (trimmed.startsWith("//")) continue;
    out.push(line.replace(/\/\/.*$/, ""));
  }
  return out.join("\n");
}

const graph = new Map();
for (const path of files(src)) {
  const from = moduleOf(path);
  if (from === null) continue;
  if (!graph.has(from)) graph.set(from, new Set());
  for (const m of code(readFileSync(path, "utf8")).matchAll(/\bcrate::(\w+)/g)) {
    const to = m[1];
    // `crate::Result`, `crate::Error`: re-exports of `error` at the crate root.
    const target = /^[A-Z]/.test(to) ? "error" : to;
    if (target !== from) graph.get(from).add(target);
  }
}
for (const deps of graph.values()) for (const d of deps) if (!graph.has(d)) graph.set(d, new Set());

// Cycles: strongly connected components of more than one module (Tarjan).
let counter = 0;
const index = new Map();
const low = new Map();
const stack = [];
const onStack = new Set();
const cycles = [];
function connect(v) {
  index.set(v, counter);
  low.set(v, counter);
  counter++;
  stack.push(v);
  onStack.add(v);
  for (const w of graph.get(v)) {
    if (!index.has(w)) {
      connect(w);
      low.set(v, Math.min(low.get(v), low.get(w)));
    } else if (onStack.has(w)) {
      low.set(v, Math.min(low.get(v), index.get(w)));
    }
  }
  if (low.get(v) === index.get(v)) {
    const component = [];
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1) cycles.push(component.sort());
  }
}
for (const v of [...graph.keys()].sort()) if (!index.has(v)) connect(v);

const names = [...graph.keys()].sort();
const width = Math.max(...names.map((n) => n.length));
console.log("core module graph (module -> modules it uses):");
for (const name of names) console.log(`  ${name.padEnd(width)} -> ${[...graph.get(name)].sort().join(", ") || "(nothing)"}`);

if (cycles.length > 0) {
  for (const c of cycles) {
    const edges = c.flatMap((a) => [...graph.get(a)].filter((b) => c.includes(b)).map((b) => `${a} -> ${b}`));
    console.error(`cycle between ${c.join(", ")}: ${edges.join("; ")}`);
  }
  process.exit(1);
}

// Layers: a module sits one above the highest module it uses.
const level = new Map();
const levelOf = (v) => {
  if (!level.has(v)) level.set(v, Math.max(-1, ...[...graph.get(v)].map(levelOf)) + 1);
  return level.get(v);
};
const layers = [];
for (const name of names) (layers[levelOf(name)] ??= []).push(name);
console.log("layers, bottom first:");
layers.forEach((mods, i) => console.log(`  ${i}: ${mods.join(", ")}`));
console.log("no cycle");
