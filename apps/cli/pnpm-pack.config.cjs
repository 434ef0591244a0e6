// A pnpmfile read only when packing (the "tarball" script points pnpm at it; installs never read it). The
// packed CLI is one bundled file (dist/asyncscope.mjs, see build.mjs): it needs none of our dependencies —
// some of which (the workspace's own packages) exist nowhere but here — nor our scripts.
module.exports = {
  hooks: {
    beforePacking(pkg) {
      delete pkg.dependencies;
      delete pkg.devDependencies;
      delete pkg.scripts;
      return pkg;
    },
  },
};
