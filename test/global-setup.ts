// Vitest global setup: builds dist/ with tsup when it is missing or older than any file in
// src/ (the CLI and the child-process tests run the built bundles). `npm test` needs nothing
// else; the native addon itself must already be built (native/ or OCICACHE_NATIVE_PATH).

import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

export default function setup(): void {
  const outputs = ["cli.cjs", "index.cjs"].map((f) => join(root, "dist", f));
  const inputs = Math.max(
    newestMtime(join(root, "src")),
    statSync(join(root, "tsup.config.ts")).mtimeMs,
    statSync(join(root, "package.json")).mtimeMs,
  );
  const stale = outputs.some((f) => !existsSync(f) || statSync(f).mtimeMs < inputs);
  if (stale) {
    execFileSync("npx", ["tsup"], { cwd: root, stdio: "inherit" });
  }
}
