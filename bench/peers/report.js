'use strict';
// The one table bench/compare.sh prints: per case, flagshm's ns per decision, each peer's, and
// peer / flagshm; then the multi-process table (8 workers: memory and how far apart they see a
// change). Inputs are the JSON files of flagshm-bench --json, bench.js and multiproc.js.
//
//   node report.js --flagshm F.json [--flagshm-mp F10k.json] --peers P.json [--multiproc M.json]

const fs = require('node:fs');

function arg(name) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : undefined;
}
function load(name) {
  const p = arg(name);
  if (!p) return null;
  try { return JSON.parse(fs.readFileSync(p, 'utf8')); } catch (e) { console.error(`report: ${p}: ${e.message}`); return null; }
}
const get = (o, ...ks) => ks.reduce((v, k) => (v == null ? undefined : v[k]), o);
const fmt = (x, d = 0) => (x == null || Number.isNaN(x) ? '-' : Number(x).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));

function table(head, rows) {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (r) => `| ${r.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join(' | ')} |`;
  console.log(line(head));
  console.log(`|${w.map((n, i) => (i === 0 ? '-'.repeat(n + 2) : `${'-'.repeat(n + 1)}:`)).join('|')}|`);
  rows.forEach((r) => console.log(line(r)));
}

const fsj = load('--flagshm');
const fmp = load('--flagshm-mp') || fsj;
const peers = load('--peers');
const mp = load('--multiproc');
const names = peers ? Object.keys(peers.peers) : [];
const CASES = ['simple', 'rollout', 'rules10', 'missing'];

console.log(`\nns per decision, median of ${get(peers, 'quick') ? '3 runs of 0.1 s (--quick)' : '5 runs of 1 s'}; ${get(peers, 'flags') || '?'} flags, 10,000 ids, a different id each call`);
const head = ['case', 'flagshm'];
for (const n of names) head.push(`${n} ${get(peers, 'peers', n, 'version') || ''}`.trim(), '× flagshm');
const rows = CASES.map((c) => {
  const f = get(fsj, 'cases', c, 'ns_per_eval');
  const r = [c, fmt(f, 1)];
  for (const n of names) {
    const p = get(peers, 'peers', n, 'cases', c, 'ns_per_eval');
    r.push(fmt(p), f && p ? `${fmt(p / f)}×` : '-');
  }
  return r;
});
const rss = ['RSS added, MB', '-'];
for (const n of names) rss.push(fmt(get(peers, 'peers', n, 'memory', 'rss_added_total_mb'), 1), '');
rows.push(rss);
table(head, rows);
const fastest = CASES.map((c) => {
  const f = get(fsj, 'cases', c, 'ns_per_eval');
  const ps = names.map((n) => get(peers, 'peers', n, 'cases', c, 'ns_per_eval')).filter((x) => x);
  return f && ps.length ? `${c} ${fmt(Math.min(...ps) / f)}×` : null;
}).filter(Boolean);
if (fastest.length) console.log(`fastest peer / flagshm: ${fastest.join(', ')}`);
for (const n of names) {
  const p = peers.peers[n];
  if (p.error) console.log(`${n}: ERROR ${p.error}`);
  const chk = p.cases ? CASES.map((c) => `${c} ${p.cases[c].true_fraction}`).join(', ') : '';
  if (chk) console.log(`${n}: ${p.api}; share of ids served true: ${chk}`);
  for (const a of p.approximations || []) console.log(`${n}: approximation: ${a}`);
}
if (peers && Object.values(peers.mirror_of_gen_c_matches || {}).some((x) => !x)) {
  console.log(`WARNING: bench/peers/gen-doc.js no longer mirrors bench/gen.c: ${JSON.stringify(peers.mirror_of_gen_c_matches)}`);
}
if (peers) console.log(`load average before/after the peers: ${peers.loadavg_before} / ${peers.loadavg_after}`);

if (mp || fmp) {
  const nw = get(mp, 'workers') || 8;
  console.log(`\n${nw} worker processes, ${fmt(get(mp, 'flags'))} flags each (peers: one SDK copy per worker; flagshm: ${nw} readers of one snapshot)`);
  const h2 = ['', 'RSS total MB', 'PSS total MB', 'change seen: first / last after the change', 'spread between workers'];
  const r2 = [];
  const m8 = get(fmp, 'memory', String(nw));
  if (m8 || get(fmp, 'propagation_us')) {
    const readers = get(m8, 'readers') || [];
    const sum = (k) => readers.reduce((a, r) => a + (r[k] || 0), 0) / 1024;
    const pr = get(fmp, 'propagation_us') || {};
    r2.push([`flagshm (${fmt(get(fmp, 'memory', 'flags'))} flags)`, readers.length ? fmt(sum('rss_kb'), 1) : '-', readers.length ? fmt(sum('pss_kb'), 1) : '-',
      `publish → sight p50 ${fmt(pr.p50, 1)} µs, p99 ${fmt(pr.p99, 1)} µs`, `≤ max ${fmt(pr.max, 1)} µs; one generation`]);
  }
  for (const n of Object.keys(get(mp, 'peers') || {})) {
    const p = mp.peers[n];
    if (p.error && !p.poll) { r2.push([n, fmt(get(p, 'memory', 'rss_total_mb'), 1), fmt(get(p, 'memory', 'pss_total_mb'), 1), `ERROR ${p.error}`, '-']); continue; }
    r2.push([`${n}, poll ${p.interval_ms} ms`, fmt(get(p, 'memory', 'rss_total_mb'), 1), fmt(get(p, 'memory', 'pss_total_mb'), 1),
      `${fmt(get(p, 'poll', 'first_ms'), 1)} / ${fmt(get(p, 'poll', 'last_ms'), 1)} ms (reload ${fmt(get(p, 'poll', 'reload_ms_median'), 1)} ms)`, `${fmt(get(p, 'poll', 'spread_ms'), 1)} ms`]);
    r2.push([`${n}, push`, '', '', `${fmt(get(p, 'push', 'first_ms'), 1)} / ${fmt(get(p, 'push', 'last_ms'), 1)} ms`, `${fmt(get(p, 'push', 'spread_ms'), 1)} ms`]);
  }
  table(h2, r2);
  for (const [what, j] of [['flagshm-bench', fsj], ['flagshm-bench (multi-process run)', fmp !== fsj ? fmp : null]]) {
    const fl = get(j, 'failures') || [];
    if (fl.length) console.log(`${what} reported failures: ${fl.join('; ')}`);
  }
  if (mp) console.log(`a bare node process: RSS ${get(mp, 'bare_node', 'rss_mb')} MB, PSS ${get(mp, 'bare_node', 'pss_mb')} MB; load average before/after: ${mp.loadavg_before} / ${mp.loadavg_after}`);
}
