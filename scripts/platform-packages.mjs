// Writes the per-platform npm packages that carry the native addons, from prebuilds/:
//
//   npm/linux-x64/     @ocicache/ocicache-linux-x64     node.napi.glibc.node, node.napi.musl.node
//   npm/linux-arm64/   @ocicache/ocicache-linux-arm64   node.napi.glibc.node, node.napi.musl.node
//   npm/darwin-x64/    @ocicache/ocicache-darwin-x64    node.napi.node
//   npm/darwin-arm64/  @ocicache/ocicache-darwin-arm64  node.napi.node
//   npm/win32-x64/     @ocicache/ocicache-win32-x64     node.napi.node
//
// Each package's root is the prebuildify `<platform>-<arch>` folder, which is where
// node-gyp-build-optional-packages looks once it has resolved `@ocicache/ocicache-<platform>-<arch>`;
// `os` and `cpu` make npm install only the matching one. Every addon of every target
// ($OCICACHE_PACK_TARGETS narrows the list) must be present and built for its target, or this
// fails.
//
// Then it lists the packages in ocicache's package.json as `optionalDependencies`, pinned to
// this version (as `napi prepublish` does): only for packing and publishing, since the
// repository's own package.json cannot name packages that are not published yet (`npm ci`
// would find them missing from the lockfile). Do not commit that change; the release workflow
// and scripts/package-test.sh make it in a throw-away checkout or restore the file.
//
//   node scripts/platform-packages.mjs        then  npm pack ./npm/<platform>-<arch>; npm pack
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { PKG, ROOT, binaryMismatch, platformDirs, targets } from "./targets.mjs";

const written = [];

const list = targets();
const problems = [];
for (const dir of platformDirs(list)) {
  const members = list.filter((t) => t.dir === dir);
  const out = join(ROOT, "npm", dir);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  for (const t of members) {
    const from = join(ROOT, "prebuilds", t.dir, t.file);
    if (!existsSync(from)) {
      problems.push(`missing prebuilds/${t.dir}/${t.file} (${t.triple})`);
      continue;
    }
    const problem = binaryMismatch(from, t);
    if (problem !== null) {
      problems.push(problem);
      continue;
    }
    copyFileSync(from, join(out, t.file));
  }
  if (members.some((t) => !existsSync(join(out, t.file)))) {
    rmSync(out, { recursive: true, force: true });
    continue;
  }
  const [first] = members;
  const manifest = {
    name: first.packageName,
    version: PKG.version,
    description: `The ${dir} native addon of ${PKG.name} (${members.map((t) => t.triple).join(", ")})`,
    license: PKG.license,
    homepage: PKG.homepage,
    bugs: PKG.bugs,
    repository: PKG.repository,
    os: [first.platform],
    cpu: [first.arch],
    // Resolving the package must give a file in its folder; the loader then picks by libc tag.
    main: first.file,
    files: members.map((t) => t.file),
    engines: PKG.engines,
  };
  writeFileSync(join(out, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  copyFileSync(join(ROOT, "LICENSE"), join(out, "LICENSE"));
  writeFileSync(
    join(out, "README.md"),
    `# ${first.packageName}\n\nThe ${dir} native addon of [${PKG.name}](${PKG.homepage}) ` +
      `(${members.map((t) => t.triple).join(", ")}). Install \`${PKG.name}\`, not this package: ` +
      "it is an optional dependency that npm installs on this platform only.\n",
  );
  written.push(manifest.name);
  console.log(`npm/${dir}: ${manifest.name}@${manifest.version} (${members.map((t) => t.file).join(", ")})`);
}
if (problems.length > 0) {
  for (const p of problems) console.error(`platform-packages: ${p}`);
  process.exit(1);
}
// Rewrite package.json as it is on disk, with the optional dependencies set.
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
pkg.optionalDependencies = Object.fromEntries(written.map((name) => [name, PKG.version]));
writeFileSync(join(ROOT, "package.json"), `${JSON.stringify(pkg, null, 2)}\n`);
console.log(`package.json: optionalDependencies ${written.map((n) => `${n}@${PKG.version}`).join(", ")}`);
