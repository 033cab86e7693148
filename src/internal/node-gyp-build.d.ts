// Types of `node-gyp-build-optional-packages` (the prebuildify loader that also looks in
// per-platform optional packages), which ships none: only what the addon
// loader uses.
declare module "node-gyp-build-optional-packages" {
  interface NodeGypBuild {
    /** Loads the addon for this process for the package at `dir` (see `resolve`). */
    (dir: string): unknown;
    /**
     * The path of the addon file for this process, for the package at `dir`: the first `.node`
     * file in `build/Release` or `build/Debug`, else in `prebuilds/<platform>-<arch>/` by tags
     * (`node`, `napi`, `glibc`, `musl`, ...), else in the package
     * `@<name>/<name>-<platform>-<arch>` resolved from `dir` (`<name>` from its package.json).
     *
     * @throws Error when no file fits.
     */
    resolve(dir: string): string;
  }
  const load: NodeGypBuild;
  export = load;
}
