// The controls the SAF CLI's threshold and summary count in each HDF file,
// by its own code: its inspecjs's contextualizeEvaluation, then its
// extractStatusCounts over the first profile (`contains[0]`), as
// `saf validate threshold` and `saf summary` call it. Prints, per file, the
// counts by status and their total.
// Usage: node saf-counts.js FILE...   (NODE_PATH: the SAF CLI's node_modules)
const fs = require('fs');
const inspecjs = require('inspecjs');
const {extractStatusCounts} = require('@mitre/saf/lib/utils/threshold');
const out = {};
for (const f of process.argv.slice(2)) {
  const ctx = inspecjs.contextualizeEvaluation(JSON.parse(fs.readFileSync(f, 'utf8')));
  const h = extractStatusCounts(ctx.contains[0]);
  const total = ['Passed', 'Failed', 'Not Applicable', 'Not Reviewed', 'Profile Error'].reduce((n, s) => n + h[s], 0);
  out[f] = {counts: h, total};
}
process.stdout.write(JSON.stringify(out));
