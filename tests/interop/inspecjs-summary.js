// Read HDF files with inspecjs (the library Heimdall and the SAF CLI use)
// and print, per file, each counted control's status, severity and waived
// flag and the SAF compliance. Counted as Heimdall counts: the controls no
// other control extends (overlay copies linked), by their root's status.
// Usage: node inspecjs-summary.js FILE...
// NODE_PATH must point at a node_modules holding inspecjs.
const fs = require('fs');
const inspecjs = require('inspecjs');
const out = {};
for (const f of process.argv.slice(2)) {
  const ctx = inspecjs.convertFileContextual(fs.readFileSync(f, 'utf8'));
  const controls = {};
  const counts = {};
  for (const p of ctx.contains) {
    for (const c of p.contains) {
      if (c.extendedBy.length !== 0) continue;
      const s = c.root.hdf.status;
      counts[s] = (counts[s] || 0) + 1;
      controls[c.data.id] = {status: s, severity: c.root.hdf.severity, waived: c.root.hdf.waived};
    }
  }
  const passed = counts['Passed'] || 0;
  const total = passed + (counts['Failed'] || 0) + (counts['Not Reviewed'] || 0) + (counts['Profile Error'] || 0);
  out[f] = {controls, counts, compliance: total ? Math.round(100 * passed / total) : 0};
}
process.stdout.write(JSON.stringify(out));
