// Shared helpers for the benchmarks: timing, median, formatting, and running commands.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** Median of `runs` timings (ms) of an async function, after one warm-up call. */
export async function medianMs(fn, runs) {
  await fn();
  const times = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return median(times);
}

/** Median of a list of numbers (the upper one of the middle two for an even count). */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Wall time (ms) of a shell command. */
export function shellMs(command) {
  const start = process.hrtime.bigint();
  execFileSync("bash", ["-c", command], { stdio: ["ignore", "ignore", "inherit"] });
  return Number(process.hrtime.bigint() - start) / 1e6;
}

export function fmt(n, digits = 2) {
  return n.toFixed(digits);
}

/** `n` rounded, with thousands separators. */
export function count(n) {
  return Math.round(n).toLocaleString("en-US");
}

/** Single-quotes `s` for bash. */
export function quote(s) {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

/** Runs `command` with bash (`set -euo pipefail`) and returns its stdout; stderr passes through. */
export function sh(command) {
  return execFileSync("bash", ["-c", `set -euo pipefail; ${command}`], { stdio: ["ignore", "pipe", "inherit"], encoding: "utf8", maxBuffer: 1 << 30 });
}

/** Reads a stamp written by a finished build step, or null when absent or from another recipe. */
export function stamp(path, key) {
  try {
    const s = JSON.parse(readFileSync(path, "utf8"));
    return JSON.stringify(s.key) === JSON.stringify(key) ? s : null;
  } catch {
    return null;
  }
}

/**
 * Runs each route of `routes` (name -> function returning a sample) `runs` times, interleaved:
 * each round runs every route once, the order rotated so that no route always follows the same
 * other one; `before` runs before every call (untimed: each route times
 * itself). Returns name -> samples.
 */
export function interleave(routes, runs, before = () => {}) {
  const names = Object.keys(routes);
  const samples = Object.fromEntries(names.map((k) => [k, []]));
  for (let i = 0; i < runs; i++) {
    for (let j = 0; j < names.length; j++) {
      const k = names[(i + j) % names.length];
      before();
      samples[k].push(routes[k]());
    }
  }
  return samples;
}
