// Types of `node-gyp-build-optional-packages` (the prebuildify loader that also looks in
// per-platform optional packages), which ships none: only what the addon
// loader uses.
declare module "node-gyp-build-optional-packages" {
  interface NodeGypBuild {
    /** Loads the addon for this process from `dir` (its build/ or prebuilds/ folder). */
    (dir: string): unknown;
    /**
     * The path of the addon file for this process under `dir`: `build/Release`, `build/Debug`,
     * then `prebuilds/<platform>-<arch>/` by tags (`glibc`, `musl`, ...).
     *
     * @throws Error when no file fits.
     */
    resolve(dir: string): string;
  }
  const load: NodeGypBuild;
  export = load;
}
