// Copies the declaration file tsup emits for the library entry to the package's top-level
// index.d.ts (package.json "types"), so the published types sit next to package.json.
import { copyFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const from = join(root, "dist", "index.d.ts");
if (!existsSync(from)) {
  console.error(`copy-dts: ${from} is missing; run tsup first`);
  process.exit(1);
}
copyFileSync(from, join(root, "index.d.ts"));
