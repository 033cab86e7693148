// The `prepack` guard: refuses to pack (or publish) ocicache unless the tarball will work.
//
// - the bundles and declarations package.json names exist (dist/index.mjs, dist/index.cjs,
//   dist/cli.cjs, dist/index.d.mts, dist/index.d.cts, index.d.ts), and LICENSE and README.md;
// - every platform package is an optional dependency at exactly this version (what
//   scripts/platform-packages.mjs writes into package.json before a pack or publish);
// - the platform packages (npm/<platform>-<arch>/, from scripts/platform-packages.mjs) exist at
//   this version with the addon of every target, each built for its target: publishing ocicache
//   without them would publish a package that loads on no machine.
//
// $OCICACHE_PACK_TARGETS (comma-separated triples) narrows the targets whose addons and
// platform packages must be there, for a local pack of the host's addon only.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

import { PKG, ROOT, binaryMismatch, platformDirs, targets } from "./targets.mjs";

const problems = [];
const need = (rel) => {
  if (!existsSync(join(ROOT, rel)) || statSync(join(ROOT, rel)).size === 0) {
    problems.push(`missing ${rel}`);
  }
};

for (const rel of ["dist/index.mjs", "dist/index.cjs", "dist/cli.cjs", "dist/index.d.mts", "dist/index.d.cts"]) {
  need(rel);
  if (!PKG.files.includes(rel)) problems.push(`package.json files does not list ${rel}`);
}
for (const rel of [PKG.types, PKG.bin.ocicache, PKG.main]) need(rel.replace(/^\.\//, ""));
need("LICENSE");
need("README.md");

const list = targets();
const optional = PKG.optionalDependencies ?? {};
for (const dir of platformDirs(list)) {
  const name = list.find((t) => t.dir === dir).packageName;
  if (optional[name] !== PKG.version) {
    problems.push(
      `optionalDependencies["${name}"] must be "${PKG.version}" (is ${JSON.stringify(optional[name])}): ` +
        "run scripts/platform-packages.mjs",
    );
  }
}

for (const dir of platformDirs(list)) {
  const manifestPath = join(ROOT, "npm", dir, "package.json");
  if (!existsSync(manifestPath)) {
    problems.push(`missing npm/${dir}/package.json: run scripts/platform-packages.mjs after building the addons`);
    continue;
  }
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
  if (manifest.version !== PKG.version) {
    problems.push(`npm/${dir} is version ${manifest.version}, not ${PKG.version}`);
  }
  for (const t of list.filter((x) => x.dir === dir)) {
    const file = join(ROOT, "npm", dir, t.file);
    if (!existsSync(file)) {
      problems.push(`missing npm/${dir}/${t.file}, the ${t.triple} addon`);
      continue;
    }
    const problem = binaryMismatch(file, t);
    if (problem !== null) problems.push(problem);
  }
}

if (problems.length > 0) {
  console.error(`ocicache ${PKG.version} cannot be packed:`);
  for (const p of problems) console.error(`  - ${p}`);
  process.exit(1);
}
console.log(`check-package: ocicache ${PKG.version} with addons for ${list.map((t) => t.napi).join(", ")}`);
