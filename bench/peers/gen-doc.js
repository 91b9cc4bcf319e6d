'use strict';
// A mirror of bench/gen.c: the same flag document, user ids and context that
// `flagshm-bench --emit-doc/--emit-ids/--emit-context` write. bench/compare.sh uses the files
// flagshm-bench emits; this mirror lets the peers run alone (`node bench.js` with no --doc) and
// lets compare.sh check that the two still agree. A change to gen.c must be made here too.
//
//   node gen-doc.js [--flags 1000] --out DIR      writes DIR/doc.json, DIR/ids.txt, DIR/context.json

const fs = require('node:fs');
const path = require('node:path');

const BENCH_NIDS = 10000;
const K = { simple: 'bench.simple', rollout: 'bench.rollout', rules10: 'bench.rules10',
  missing: 'bench.missing', string: 'bench.string', json: 'bench.json' };
const BENCH_CASE_FLAGS = 5;

function rules10Targeting() {
  const rule = (id, priority, attribute, operator, value, extra) => (
    { id, priority, conditions: [{ attribute, operator, value }], ...extra, variation: true });
  return [
    rule('r1', 1, 'country', 'equals', 'ZZ'),
    rule('r2', 2, 'plan', 'in', ['enterprise', 'gold', 'platinum']),
    rule('r3', 3, 'age', 'greaterThan', 200),
    rule('r4', 4, 'email', 'contains', '@internal.'),
    rule('r5', 5, 'userAgent', 'matches', '(bot|crawler|spider)/[0-9]+'),
    rule('r6', 6, 'plan', 'equals', 'staff'),
    rule('r7', 7, 'country', 'in', ['FR', 'IT', 'ES', 'NL', 'BE', 'AT', 'CH', 'PL']),
    rule('r8', 8, 'loginCount', 'greaterThan', 100000),
    rule('r9', 9, 'userAgent', 'contains', 'HeadlessChrome'),
    rule('r10', 10, 'country', 'equals', 'DE', { rolloutPercentage: 50 }),
  ];
}

function caseFlags() {
  return [
    { key: K.simple, defaultValue: true },
    { key: K.rollout, defaultValue: true, offValue: false, rolloutPercentage: 25 },
    { key: K.rules10, defaultValue: true, offValue: false, rolloutPercentage: 0, targeting: rules10Targeting() },
    { key: K.string, defaultValue: 'checkout-v2', offValue: 'checkout-v1' },
    { key: K.json, defaultValue: { layout: 'grid', limits: { burst: 20, rps: 100 }, tags: ['a', 'b'] }, offValue: {} },
  ];
}

// Filler flag j: by j % 10, 0-5 boolean, 6-7 string, 8 number, 9 JSON; rollout (j*37) % 101;
// every third has a rule on country; every seventeenth is disabled.
function fillerFlag(j) {
  const key = `flag-${String(j).padStart(6, '0')}`;
  const kind = j % 10;
  let def; let off; let variation;
  if (kind <= 5) { def = true; off = false; variation = true; }
  else if (kind <= 7) { def = `variant-${j}`; off = 'off'; variation = 'rule'; }
  else if (kind === 8) { def = j; off = 0; variation = -1; }
  else { def = { mode: 'a', limit: j }; off = {}; variation = { mode: 'rule' }; }
  const f = { key, name: `Filler flag ${j}`, owner: `team-${j % 8}`, enabled: j % 17 !== 16,
    defaultValue: def, offValue: off, rolloutPercentage: (j * 37) % 101 };
  if (j % 3 === 0) {
    f.targeting = [{ id: `r${j % 5}`, conditions: [{ attribute: 'country', operator: 'in', value: ['US', 'CA', 'MX'] }],
      rolloutPercentage: j % 100, variation }];
  }
  return f;
}

function genDoc(nflags) {
  const flags = caseFlags();
  for (let j = 0; j + BENCH_CASE_FLAGS < nflags; j++) flags.push(fillerFlag(j));
  return { formatVersion: 1, segments: {}, flags };
}

function fmix32(h) {
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function genIds() {
  const ids = [];
  for (let i = 0; i < BENCH_NIDS; i++) ids.push(`u-${fmix32(i + 1).toString(16).padStart(8, '0')}`);
  return ids;
}

function genContext() {
  return { country: 'DE', plan: 'free', email: 'jane.doe@example.com',
    userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0', age: 35, loginCount: 17 };
}

module.exports = { genDoc, genIds, genContext, K };

if (require.main === module) {
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(name);
    return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
  };
  const n = Math.min(Number(arg('--flags', 1000)), 200000);
  const out = arg('--out', '.');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'doc.json'), `${JSON.stringify(genDoc(n), null, 2)}\n`);
  fs.writeFileSync(path.join(out, 'ids.txt'), `${genIds().join('\n')}\n`);
  fs.writeFileSync(path.join(out, 'context.json'), `${JSON.stringify(genContext(), null, 2)}\n`);
}
