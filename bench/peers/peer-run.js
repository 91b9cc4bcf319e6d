'use strict';
// One SDK in a fresh process (bench.js starts one per SDK, so no SDK's JIT state or heap
// colours another's): load the code, load the flags, measure memory, then time the four cases.
//
//   node --expose-gc peer-run.js --sdk NAME --doc FILE --ids FILE --cases FILE
//        [--runs 5] [--seconds 1] [--quick]
// Prints one JSON object on stdout.

const guard = require('./guard');
guard.install();

const C = require('./common');

const SDKS = {
  launchdarkly: './sdk-launchdarkly',
  unleash: './sdk-unleash',
  growthbook: './sdk-growthbook',
  flagd: './sdk-flagd',
};
const CASES = ['simple', 'rollout', 'rules10', 'missing'];
const MAX_CALLS_PER_RUN = 50e6; // bounds a run even if the clock misbehaves

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

async function main() {
  const quick = process.argv.includes('--quick');
  const runs = Number(arg('--runs', quick ? 3 : 5));
  const seconds = Number(arg('--seconds', quick ? 0.1 : 1));
  const sdk = require(SDKS[arg('--sdk')] || (() => { throw new Error(`--sdk one of ${Object.keys(SDKS)}`); })());
  const cases = C.readJson(arg('--cases'));

  // Memory: the document is read and normalised first, so its own objects are in the baseline;
  // what follows is the SDK's code, then the SDK's copy of the flags.
  const flags = C.normalizeDoc(C.loadDoc(arg('--doc')));
  const ids = C.loadIds(arg('--ids'));
  C.settle();
  const base = { rss: C.rssBytes(), heap: process.memoryUsage().heapUsed };
  const version = sdk.load();
  C.settle();
  const code = { rss: C.rssBytes(), heap: process.memoryUsage().heapUsed };
  const t0 = C.now();
  const h = await sdk.create(flags);
  const loadMs = Number(C.now() - t0) / 1e6;
  C.settle();
  const loaded = { rss: C.rssBytes(), heap: process.memoryUsage().heapUsed };

  // A context per id and case, built before timing (the cost of building one is not counted).
  const ctxs = {};
  for (const name of CASES) {
    const attrs = cases[name].attrs || {};
    ctxs[name] = ids.map((id) => {
      const a = {};
      for (const [k, v] of Object.entries(attrs)) a[k] = typeof v === 'string' ? v.replace('{id}', id) : v;
      return h.context(id, a);
    });
  }

  const out = {
    sdk: sdk.name, package: sdk.pkg, version, api: sdk.api, node: process.version,
    flags: flags.length, ids: ids.length, runs, seconds_per_run: seconds,
    load_ms: +loadMs.toFixed(1),
    memory: {
      rss_node_mb: +(base.rss / C.MB).toFixed(1),
      rss_code_added_mb: +((code.rss - base.rss) / C.MB).toFixed(1),
      rss_flags_added_mb: +((loaded.rss - code.rss) / C.MB).toFixed(1),
      rss_added_total_mb: +((loaded.rss - base.rss) / C.MB).toFixed(1),
      heap_flags_added_mb: +((loaded.heap - code.heap) / C.MB).toFixed(1),
    },
    cases: {},
  };

  const n = ids.length;
  for (const name of CASES) {
    const key = cases[name].key;
    const cs = ctxs[name];
    // Decisions over every id once: a check that the translation means what flagshm's flag means.
    let on = 0;
    for (let i = 0; i < n; i++) if (await h.evaluate(key, cs[i], false)) on++;
    const fn = (i) => h.evaluate(key, cs[i % n], false);
    const warm = sdk.isAsync ? await C.timeAsync(fn, seconds / 2, MAX_CALLS_PER_RUN) : C.timeSync(fn, seconds / 2, MAX_CALLS_PER_RUN);
    void warm;
    const ns = [];
    for (let r = 0; r < runs; r++) {
      const res = sdk.isAsync ? await C.timeAsync(fn, seconds, MAX_CALLS_PER_RUN) : C.timeSync(fn, seconds, MAX_CALLS_PER_RUN);
      ns.push(res.ns);
    }
    out.cases[name] = {
      key,
      ns_per_eval: +C.median(ns).toFixed(1),
      min_ns: +Math.min(...ns).toFixed(1),
      max_ns: +Math.max(...ns).toFixed(1),
      runs_ns: ns.map((x) => +x.toFixed(1)),
      true_fraction: +(on / n).toFixed(4),
    };
  }
  out.approximations = [...h.notes];
  out.network = { loopback_connects: guard.attempts.loopback, refused: guard.attempts.refused };
  h.close();
  process.stdout.write(`${JSON.stringify(out)}\n`);
  // Some SDKs keep timers; the result is written, so leave now.
  setImmediate(() => process.exit(0));
}

main().catch((e) => { process.stderr.write(`peer-run: ${e && e.stack || e}\n`); process.exit(1); });
