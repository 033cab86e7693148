#!/usr/bin/env node
// Checks an installed ocicache the way a new user's project uses it. CONSUMER is a project
// folder where `npm install` put ocicache (and its platform package); ARCHIVE is a small image
// archive (scripts/make-archive.mjs). Runs in that folder, on any OS:
//
//   1. ESM `import` (named exports; a default import fails, as the ESM build has none) and a
//      real load -> list -> prune through the API;
//   2. CJS `require`, and the addon it loaded is the one in node_modules/@ocicache/;
//   3. TypeScript consumers under `module: nodenext` (an .mts and a .cts file) and
//      `moduleResolution: bundler` type-check, and a default import is a type error under
//      nodenext (regression: "masquerading as CJS", it type-checked and failed at run time);
//   4. `npx ocicache --version`, then `ocicache load`, `ls --json`, `prune --yes --json`.
//
//   node scripts/consumer-smoke.mjs CONSUMER ARCHIVE TSC
//
// TSC is the TypeScript compiler's bin script (typescript/bin/tsc) to type-check with: the
// consumer needs no tooling of its own. Exits non-zero on the first failed check.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, sep } from "node:path";

const [consumer, archive, tsc] = process.argv.slice(2);
if (!consumer || !archive || !tsc) {
  console.error("usage: consumer-smoke.mjs CONSUMER ARCHIVE TSC");
  process.exit(2);
}
const installed = JSON.parse(readFileSync(join(consumer, "node_modules", "ocicache", "package.json"), "utf8"));
const REFERENCE = "smoke/app:1";

function run(what, cmd, args, { expectFail = false } = {}) {
  const r = spawnSync(cmd, args, {
    cwd: consumer,
    encoding: "utf8",
    // npx is npx.cmd on Windows, which only a shell runs.
    shell: process.platform === "win32" && cmd === "npx",
  });
  const failed = r.status !== 0;
  if (failed !== expectFail) {
    console.error(`FAIL ${what}: exit ${r.status}${expectFail ? " (expected a failure)" : ""}`);
    console.error(r.stdout);
    console.error(r.stderr);
    process.exit(1);
  }
  console.log(`ok   ${what}`);
  return r;
}

function write(rel, text) {
  mkdirSync(join(consumer, rel, ".."), { recursive: true });
  writeFileSync(join(consumer, rel), text);
}

const root = (name) => join(consumer, `cache-${name}`);

// 1. ESM.
write(
  "smoke-esm.mjs",
  `import * as all from "ocicache";
import { ImageCache, OcicacheError, ERROR_CODES } from "ocicache";
if ("default" in all) throw new Error("the ESM build has a default export");
if (!ERROR_CODES.includes("NATIVE_NOT_FOUND")) throw new Error("ERROR_CODES lacks NATIVE_NOT_FOUND");
const cache = ImageCache.open({ root: process.argv[2] });
const loaded = await cache.load(process.argv[3]);
if (loaded.length !== 1 || loaded[0].reference !== ${JSON.stringify(REFERENCE)}) throw new Error("load: " + JSON.stringify(loaded));
const listed = await cache.list();
if (listed.length !== 1 || listed[0].layerCount < 1) throw new Error("list: " + JSON.stringify(listed));
const report = await cache.prune();
if (report.imageRefsRemoved !== 1 || report.bytesReclaimed <= 0) throw new Error("prune: " + JSON.stringify(report));
if ((await cache.list()).length !== 0) throw new Error("list after prune is not empty");
try { await cache.get(${JSON.stringify(REFERENCE)}); throw new Error("get after prune succeeded"); }
catch (err) { if (!(err instanceof OcicacheError) || err.code !== "IMAGE_NOT_FOUND") throw err; }
`,
);
run("ESM import, load -> list -> prune through the API", process.execPath, ["smoke-esm.mjs", root("esm"), archive]);
write("smoke-default.mjs", `import ocicache from "ocicache";\nconsole.log(typeof ocicache);\n`);
run("ESM default import fails at run time (there is none)", process.execPath, ["smoke-default.mjs"], { expectFail: true });

// 2. CJS, and where the addon came from.
write(
  "smoke-cjs.cjs",
  `const { ImageCache, Image } = require("ocicache");
if (typeof Image.load !== "function") throw new Error("Image.load is missing");
ImageCache.open({ root: process.argv[2] }).list().then((list) => {
  if (list.length !== 0) throw new Error("a fresh cache is not empty");
  const addons = Object.keys(require.cache).filter((k) => k.endsWith(".node"));
  console.log(JSON.stringify(addons));
});
`,
);
const cjs = run("CJS require and list", process.execPath, ["smoke-cjs.cjs", root("cjs")]);
const addons = JSON.parse(cjs.stdout.trim().split("\n").pop());
const platformPackages = join(consumer, "node_modules", "@ocicache") + sep;
if (addons.length !== 1 || !addons[0].startsWith(platformPackages)) {
  console.error(`FAIL the addon loaded is not from ${platformPackages}: ${JSON.stringify(addons)}`);
  process.exit(1);
}
console.log(`ok   the addon loaded is ${addons[0]}`);

// 3. TypeScript consumers.
const consumerTs = (importLine) => `${importLine}
const cache: ImageCache = ImageCache.open({ root: "cache" });
export async function main(): Promise<number> {
  const report: ImagePruneReport = await cache.prune({ dryRun: true, olderThan: 1000 });
  const list: readonly ImageHandle[] = await Image.list();
  try {
    await Image.get("missing:tag");
  } catch (err) {
    if (err instanceof ImageNotFoundError) return err.reference.length;
    if (err instanceof OcicacheError) return err.code.length;
  }
  return report.imageRefsRemoved + list.length;
}
`;
const names = "Image, ImageCache, ImageNotFoundError, OcicacheError, type ImageHandle, type ImagePruneReport";
write("ts-nodenext/esm.mts", consumerTs(`import { ${names} } from "ocicache";`));
write(
  "ts-nodenext/cjs.cts",
  consumerTs(
    `import ocicache = require("ocicache");\nimport { Image, ImageCache, ImageNotFoundError, OcicacheError } from "ocicache";\n` +
      `type ImageHandle = ocicache.ImageHandle;\ntype ImagePruneReport = ocicache.ImagePruneReport;`,
  ),
);
const strict = { strict: true, noEmit: true, skipLibCheck: false, types: [] };
write(
  "ts-nodenext/tsconfig.json",
  JSON.stringify({ compilerOptions: { ...strict, module: "nodenext", moduleResolution: "nodenext", target: "es2022" }, files: ["esm.mts", "cjs.cts"] }),
);
run("TypeScript consumer, module nodenext (.mts and .cts)", process.execPath, [tsc, "-p", "ts-nodenext"]);
write("ts-bundler/index.ts", consumerTs(`import { ${names} } from "ocicache";`));
write(
  "ts-bundler/tsconfig.json",
  JSON.stringify({ compilerOptions: { ...strict, module: "esnext", moduleResolution: "bundler", target: "es2022" }, files: ["index.ts"] }),
);
run("TypeScript consumer, moduleResolution bundler", process.execPath, [tsc, "-p", "ts-bundler"]);
write("ts-default/index.mts", `import ocicache from "ocicache";\nexport const x = ocicache;\n`);
write(
  "ts-default/tsconfig.json",
  JSON.stringify({ compilerOptions: { ...strict, module: "nodenext", moduleResolution: "nodenext", target: "es2022" }, files: ["index.mts"] }),
);
const typed = run("TypeScript rejects a default import under nodenext (no masquerading as CJS)", process.execPath, [tsc, "-p", "ts-default"], {
  expectFail: true,
});
if (!/TS1192|TS1259|has no default export/.test(typed.stdout + typed.stderr)) {
  console.error(`FAIL the default import failed for another reason:\n${typed.stdout}${typed.stderr}`);
  process.exit(1);
}

// 4. The CLI through npx.
const version = run("npx ocicache --version", "npx", ["--offline", "--no-install", "ocicache", "--version"]);
if (version.stdout.trim() !== installed.version) {
  console.error(`FAIL npx ocicache --version printed ${JSON.stringify(version.stdout)}, not ${installed.version}`);
  process.exit(1);
}
const cliRoot = root("cli");
run("ocicache load", "npx", ["--offline", "--no-install", "ocicache", "--root", cliRoot, "load", "-i", archive]);
const ls = JSON.parse(run("ocicache ls --json", "npx", ["--offline", "--no-install", "ocicache", "--root", cliRoot, "ls", "--json"]).stdout);
if (ls.length !== 1 || ls[0].reference !== REFERENCE) {
  console.error(`FAIL ls --json: ${JSON.stringify(ls)}`);
  process.exit(1);
}
const pruned = JSON.parse(
  run("ocicache prune --yes --json", "npx", ["--offline", "--no-install", "ocicache", "--root", cliRoot, "prune", "--yes", "--json"]).stdout,
);
if (pruned.imageRefsRemoved !== 1 || pruned.removed[0].reference !== REFERENCE || pruned.bytesAfter >= pruned.bytesBefore) {
  console.error(`FAIL prune --json: ${JSON.stringify(pruned)}`);
  process.exit(1);
}
console.log(`consumer smoke: ocicache ${installed.version} works from ${consumer}`);
