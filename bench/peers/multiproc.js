'use strict';
// The multi-process picture with per-process SDKs: 8 worker processes, each holding its own SDK
// copy of 10,000 flags. Measures their total RSS and PSS, then changes one flag
// (bench.simple: on -> off -> on) and records when each worker first sees it:
//   poll: each worker stats the flag file on its own timer (every --interval-ms, own phase) and
//         reloads its whole copy when the file changed (file or HTTP polling, as deployed);
//   push: the parent sends each worker an update message, one after another (as a streaming
//         connection per worker would), and each reloads its own copy.
// The spread is max - min of the first-sight times across the 8 workers.
//
//   node --expose-gc multiproc.js [--sdks a,b] [--workers 8] [--flags 10000] [--doc FILE]
//        [--ids FILE] [--context FILE] [--interval-ms 1000] [--quick: 1,000 flags, 250 ms]
// Prints one JSON object on stdout. The flagshm side (8 readers of one snapshot) is measured by
// flagshm-bench (memory, propagation_us); bench/compare.sh puts the two side by side.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { fork, spawn } = require('node:child_process');
const C = require('./common');
const gen = require('./gen-doc');

const ALL = ['flagd', 'growthbook', 'launchdarkly', 'unleash'];
const WATCH = gen.K.simple;

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const quick = process.argv.includes('--quick');
const NWORKERS = Math.min(Number(arg('--workers', 8)), 32);
const NFLAGS = Math.min(Number(arg('--flags', quick ? 1000 : 10000)), 200000);
const INTERVAL_MS = Number(arg('--interval-ms', quick ? 250 : 1000));
const READY_TIMEOUT_MS = 300000;
const SEEN_TIMEOUT_MS = INTERVAL_MS * 3 + 120000; // raised per SDK to 3x its load time

// Waits for `count` messages of `type` from the workers, or rejects after `ms`.
function collect(workers, type, count, ms) {
  return new Promise((resolve, reject) => {
    const got = new Map();
    const t = setTimeout(() => { cleanup(); reject(new Error(`${type}: ${got.size}/${count} workers after ${ms} ms`)); }, ms);
    const handlers = workers.map((w, i) => {
      const h = (m) => {
        if (m.type === 'error') { cleanup(); reject(new Error(`worker ${i}: ${m.error}`)); return; }
        if (m.type !== type || got.has(i)) return;
        got.set(i, m);
        if (got.size === count) { cleanup(); resolve([...got.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1])); }
      };
      w.on('message', h);
      return h;
    });
    function cleanup() { clearTimeout(t); workers.forEach((w, i) => w.off('message', handlers[i])); }
  });
}

function writeAtomic(file, text) {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file); // readers see the old file or the new one, never half of one
}

function setWatched(doc, enabled) {
  return JSON.stringify({ ...doc, flags: doc.flags.map((f) => (f.key === WATCH ? { ...f, enabled } : f)) });
}

function summary(t0, seen) {
  const lat = seen.map((m) => Number(BigInt(m.t_ns) - t0) / 1e6);
  return {
    first_ms: +Math.min(...lat).toFixed(2),
    last_ms: +Math.max(...lat).toFixed(2),
    spread_ms: +(Math.max(...lat) - Math.min(...lat)).toFixed(2),
    per_worker_ms: lat.map((x) => +x.toFixed(2)),
    reload_ms_median: +C.median(seen.map((m) => m.reload_ms)).toFixed(2),
  };
}

async function stopAll(workers) {
  for (const w of workers) { try { w.send({ type: 'exit' }); } catch (_) { /* gone */ } }
  const deadline = Date.now() + 5000;
  while (workers.some((w) => w.exitCode === null && w.signalCode === null) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
}

async function runSdk(sdk, doc, ids, ctx, dir) {
  const file = path.join(dir, `flags-${sdk}.json`);
  writeAtomic(file, setWatched(doc, true));
  const workers = [];
  const out = { workers: NWORKERS, flags: doc.flags.length, interval_ms: INTERVAL_MS };
  try {
    const t0 = Date.now();
    for (let i = 0; i < NWORKERS; i++) {
      workers.push(fork(path.join(__dirname, 'multiproc-worker.js'),
        [sdk, file, String(INTERVAL_MS), WATCH, ids[i % ids.length], String(4 * READY_TIMEOUT_MS + 4 * SEEN_TIMEOUT_MS)],
        { execArgv: ['--expose-gc'], env: { ...process.env, FLAGSHM_PEERS_CONTEXT: JSON.stringify(ctx) }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }));
    }
    const ready = await collect(workers, 'ready', NWORKERS, READY_TIMEOUT_MS);
    out.load_all_s = +((Date.now() - t0) / 1000).toFixed(2);
    if (ready.some((m) => m.value !== true)) throw new Error(`${WATCH} is not on in every worker before the change`);
    const mem = ready.map((m) => C.procMemory(m.pid));
    out.memory = {
      rss_total_mb: +(mem.reduce((a, m) => a + m.rss, 0) / C.MB).toFixed(1),
      pss_total_mb: +(mem.reduce((a, m) => a + (m.pss || 0), 0) / C.MB).toFixed(1),
      rss_per_worker_mb: +(mem.reduce((a, m) => a + m.rss, 0) / C.MB / NWORKERS).toFixed(1),
      pss_per_worker_mb: +(mem.reduce((a, m) => a + (m.pss || 0), 0) / C.MB / NWORKERS).toFixed(1),
    };

    // poll: the file changes once; each worker finds out on its own timer.
    workers.forEach((w) => w.send({ type: 'poll-start' }));
    await collect(workers, 'poll-started', NWORKERS, 10000);
    await new Promise((r) => setTimeout(r, INTERVAL_MS * 1.5)); // every timer is running
    // A reload costs about what the first load did; on a loaded host that can be minutes.
    const seenMs = Math.max(SEEN_TIMEOUT_MS, 3 * (Date.now() - t0));
    let seenP = collect(workers, 'seen', NWORKERS, seenMs);
    let t = C.now();
    writeAtomic(file, setWatched(doc, false));
    out.poll = summary(t, await seenP);
    workers.forEach((w) => w.send({ type: 'poll-stop' }));
    await collect(workers, 'poll-stopped', NWORKERS, 10000);

    // push: one message to each worker, in turn, as fast as the parent can send them.
    writeAtomic(file, setWatched(doc, true));
    seenP = collect(workers, 'seen', NWORKERS, seenMs);
    t = C.now();
    workers.forEach((w) => w.send({ type: 'push' }));
    out.push = summary(t, await seenP);
  } catch (e) {
    out.error = String(e && e.message || e);
  } finally {
    await stopAll(workers);
    fs.rmSync(file, { force: true });
  }
  return out;
}

// A bare node process, for scale: what a worker costs before any SDK.
async function bareNode() {
  const p = spawn(process.execPath, ['-e', 'process.stdout.write("r"); setTimeout(() => {}, 20000)'], { stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise((resolve) => { p.stdout.once('data', resolve); setTimeout(resolve, 10000); });
  await new Promise((r) => setTimeout(r, 200));
  const m = C.procMemory(p.pid);
  p.kill('SIGKILL');
  return { rss_mb: +(m.rss / C.MB).toFixed(1), pss_mb: m.pss === null ? null : +(m.pss / C.MB).toFixed(1) };
}

async function main() {
  const sdks = arg('--sdks', ALL.join(',')).split(',').filter((s) => ALL.includes(s));
  const doc = arg('--doc') ? C.loadDoc(arg('--doc')) : gen.genDoc(NFLAGS);
  const ids = arg('--ids') ? C.loadIds(arg('--ids')) : gen.genIds();
  const ctx = arg('--context') ? C.readJson(arg('--context')) : gen.genContext();
  if (!doc.flags.some((f) => f.key === WATCH)) throw new Error(`the document has no ${WATCH}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flagshm-peers-mp-'));
  const out = {
    node: process.version, workers: NWORKERS, flags: doc.flags.length, watched_flag: WATCH,
    interval_ms: INTERVAL_MS, bare_node: await bareNode(), loadavg_before: os.loadavg().map((x) => +x.toFixed(2)), peers: {},
  };
  try {
    for (const s of sdks) {
      process.stderr.write(`multiproc: ${s}, ${NWORKERS} workers x ${doc.flags.length} flags...\n`);
      out.peers[s] = await runSdk(s, doc, ids, ctx, dir);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  out.loadavg_after = os.loadavg().map((x) => +x.toFixed(2));
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  process.exit(0);
}

main().catch((e) => { process.stderr.write(`multiproc: ${e && e.stack || e}\n`); process.exit(1); });
