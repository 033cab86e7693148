import { defineConfig } from "tsup";

// One build for both entries so `clean` runs once. The library ships ESM and CJS; the bin
// (`dist/cli.cjs`, see package.json) is the CJS build of src/cli.ts, whose first line is the
// `#!/usr/bin/env node` banner (esbuild keeps an entry's hashbang; tsup marks the file executable).
//
// Declarations: `dist/index.d.mts` (ESM) and `dist/index.d.ts`, which scripts/copy-dts.mjs
// renames to `dist/index.d.cts` (CJS; tsup's declaration worker does not see `outExtension`'s
// `dts` key) and copies to the top-level `index.d.ts`. One file for both formats would make
// TypeScript accept a default import that fails at run time ("masquerading as CJS").
export default defineConfig({
  entry: { index: "src/index.ts", cli: "src/cli.ts" },
  format: ["esm", "cjs"],
  dts: { entry: { index: "src/index.ts" } },
  outExtension: ({ format }) => ({ js: format === "esm" ? ".mjs" : ".cjs" }),
  target: "node20",
  platform: "node",
  shims: true,
  clean: true,
  sourcemap: false,
  splitting: false,
});
