// Places the declarations tsup emits for the library entry: `dist/index.d.mts` (ESM, as
// emitted) beside `dist/index.mjs`, `dist/index.d.ts` renamed to `dist/index.d.cts` (CJS)
// beside `dist/index.cjs`, and a copy of the CJS one at the top-level `index.d.ts` (package.json
// "types", for resolvers that ignore "exports"; committed so changes to the public types show
// in review).
import { copyFileSync, existsSync, renameSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const emitted = join(root, "dist", "index.d.ts");
const esm = join(root, "dist", "index.d.mts");
for (const file of [emitted, esm]) {
  if (!existsSync(file)) {
    console.error(`copy-dts: ${file} is missing; run tsup first`);
    process.exit(1);
  }
}
const cjs = join(root, "dist", "index.d.cts");
renameSync(emitted, cjs);
copyFileSync(cjs, join(root, "index.d.ts"));
