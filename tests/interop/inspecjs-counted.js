// The controls Heimdall and the SAF CLI count in each HDF file, read by
// inspecjs: every control no other control extends (overlay copies and
// shared ids linked as contextualizeEvaluation links them), with the
// status and severity of the end of its chain (`root`). Prints, per file,
// {loops, counted: sorted [id, status, severity]...}: `loops` says whether
// some control's chain of links (extendsFrom) comes back to itself, in
// which case `counted` may be absent and `error` says why (inspecjs
// recurses forever on such a chain when it counts through it).
// Usage: node inspecjs-counted.js FILE...   (NODE_PATH: inspecjs's node_modules)
const fs = require('fs');
const inspecjs = require('inspecjs');
const out = {};
for (const f of process.argv.slice(2)) {
  const ctx = inspecjs.contextualizeEvaluation(JSON.parse(fs.readFileSync(f, 'utf8')));
  let loops = false;
  for (const p of ctx.contains) {
    for (const c of p.contains) {
      const seen = new Set();
      for (let at = c; at && !loops; at = at.extendsFrom[0]) {
        if (seen.has(at)) loops = true;
        seen.add(at);
      }
    }
  }
  try {
    const counted = [];
    for (const p of ctx.contains) {
      for (const c of p.contains) {
        if (c.extendedBy.length !== 0) continue;
        const r = c.root;
        counted.push([c.data.id, r.hdf.status, r.hdf.severity]);
      }
    }
    const key = (x) => x.join('\u0000');
    counted.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
    out[f] = {loops, counted};
  } catch (e) {
    out[f] = {loops, error: String(e)};
  }
}
process.stdout.write(JSON.stringify(out));
