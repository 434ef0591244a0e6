// A pnpmfile read only when packing (the "tarball" script points pnpm at it; installs never read it): an
// installed package needs neither our devDependencies (workspace-only packages) nor our scripts.
module.exports = {
  hooks: {
    beforePacking(pkg) {
      delete pkg.devDependencies;
      delete pkg.scripts;
      return pkg;
    },
  },
};
