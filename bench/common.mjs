// Shared helpers for the benchmarks: timing, median, and running commands.
import { execFileSync } from "node:child_process";

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
