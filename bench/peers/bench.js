'use strict';
// The peer side of the benchmark: each SDK in its own fresh process (peer-run.js), one after
// another, on the flag set flagshm-bench evaluates. Prints one JSON object on stdout.
//
//   node bench.js [--doc FILE --ids FILE --context FILE] [--quick] [--sdks a,b] [--table]
//
// --doc/--ids/--context are flagshm-bench's --emit-doc/--emit-ids/--emit-context output; without
// them the mirror of bench/gen.c (gen-doc.js) writes the same set to a temporary directory.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const gen = require('./gen-doc');
const C = require('./common');

const ALL = ['flagd', 'growthbook', 'launchdarkly', 'unleash'];
const CASES = ['simple', 'rollout', 'rules10', 'missing'];

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

function sameJson(a, b) {
  const canon = (v) => (Array.isArray(v) ? v.map(canon)
    : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])])) : v);
  return JSON.stringify(canon(a)) === JSON.stringify(canon(b));
}

function main() {
  const quick = process.argv.includes('--quick');
  const sdks = arg('--sdks', ALL.join(',')).split(',').filter((s) => ALL.includes(s));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flagshm-peers-'));
  try {
    let docPath = arg('--doc');
    let idsPath = arg('--ids');
    let ctxPath = arg('--context');
    const source = docPath ? 'flagshm-bench --emit-doc' : 'bench/peers/gen-doc.js (mirror of bench/gen.c)';
    if (!docPath) {
      docPath = path.join(tmp, 'doc.json');
      fs.writeFileSync(docPath, JSON.stringify(gen.genDoc(Number(arg('--flags', 1000)))));
    }
    if (!idsPath) { idsPath = path.join(tmp, 'ids.txt'); fs.writeFileSync(idsPath, gen.genIds().join('\n')); }
    if (!ctxPath) { ctxPath = path.join(tmp, 'context.json'); fs.writeFileSync(ctxPath, JSON.stringify(gen.genContext())); }

    const doc = C.loadDoc(docPath);
    const ids = C.loadIds(idsPath);
    const ctx = C.readJson(ctxPath);
    // The mirror must still describe what flagshm-bench builds; say so when it does not.
    const mirror = {
      doc: sameJson(doc, gen.genDoc(doc.flags.length)),
      ids: sameJson(ids, gen.genIds()),
      context: sameJson(ctx, gen.genContext()),
    };

    const spec = {};
    for (const c of CASES) spec[c] = { key: arg(`--key-${c}`, gen.K[c]), attrs: ctx };
    const specPath = path.join(tmp, 'cases.json');
    fs.writeFileSync(specPath, JSON.stringify(spec));

    const out = {
      node: process.version,
      source, flags: doc.flags.length, ids: ids.length, context: ctx,
      mirror_of_gen_c_matches: mirror,
      quick,
      loadavg_before: os.loadavg().map((x) => +x.toFixed(2)),
      peers: {},
    };
    const timeoutMs = (quick ? 120 : 600) * 1000;
    for (const s of sdks) {
      process.stderr.write(`peers: ${s}...\n`);
      const argv = ['--expose-gc', path.join(__dirname, 'peer-run.js'), '--sdk', s,
        '--doc', docPath, '--ids', idsPath, '--cases', specPath, ...(quick ? ['--quick'] : [])];
      const r = spawnSync(process.execPath, argv, { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1 << 24 });
      if (r.status !== 0 || !r.stdout.trim()) {
        out.peers[s] = { error: `exit ${r.status}${r.signal ? ` (${r.signal}${r.error ? `, ${r.error.code}` : ''})` : ''}: ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}` };
        process.stderr.write(`peers: ${s} failed: ${out.peers[s].error}\n`);
        continue;
      }
      out.peers[s] = JSON.parse(r.stdout.trim().split('\n').pop());
    }
    out.loadavg_after = os.loadavg().map((x) => +x.toFixed(2));
    if (process.argv.includes('--table')) printTable(out);
    else process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function printTable(out) {
  const names = Object.keys(out.peers);
  const pad = (s, n) => String(s).padStart(n);
  console.log(`${'case'.padEnd(10)}${names.map((n) => pad(n, 14)).join('')}`);
  for (const c of CASES) {
    console.log(`${c.padEnd(10)}${names.map((n) => pad(out.peers[n].cases ? out.peers[n].cases[c].ns_per_eval : 'error', 14)).join('')}`);
  }
  console.log(`${'RSS MB'.padEnd(10)}${names.map((n) => pad(out.peers[n].memory ? out.peers[n].memory.rss_added_total_mb : '-', 14)).join('')}`);
}

main();
