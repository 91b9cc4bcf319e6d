'use strict';
// One worker process of multiproc.js: holds its own SDK copy of the flag file, and picks up a
// change the way a deployed worker does, independently of its siblings:
//   poll: stat the file every INTERVAL ms on its own timer (its phase set by when it started,
//         plus a random offset, as real pollers drift apart), reload the whole file on change;
//   push: reload when the parent's message arrives (a streaming update, one connection each).
// After a reload it evaluates the watched flag and reports the first moment it sees the new
// value (process.hrtime = CLOCK_MONOTONIC, one clock for every process on the host).
// Bounded: it exits when told, when the parent goes away, or after MAX_LIFE_MS.

const fs = require('node:fs');
const guard = require('./guard');
guard.install();
const C = require('./common');

const SDKS = { launchdarkly: './sdk-launchdarkly', unleash: './sdk-unleash', growthbook: './sdk-growthbook', flagd: './sdk-flagd' };
const [sdkName, file, intervalMs, watchKey, userId, maxLifeMs] = process.argv.slice(2);
const sdk = require(SDKS[sdkName]);
const MAX_LIFE_MS = Number(maxLifeMs);
setTimeout(() => process.exit(3), MAX_LIFE_MS).unref();
process.on('disconnect', () => process.exit(0));

function send(m) { if (process.connected) process.send(m); }

async function main() {
  sdk.load();
  const h = await sdk.create(C.normalizeDoc(C.loadDoc(file)));
  const ctx = h.context(userId, JSON.parse(process.env.FLAGSHM_PEERS_CONTEXT || '{}'));
  let last = await h.evaluate(watchKey, ctx, null);
  let mtime = fs.statSync(file).mtimeMs;
  let busy = false;
  let timer = null;
  C.settle();

  async function reload(why) {
    if (busy) return;
    busy = true;
    try {
      const t0 = C.now();
      await h.reload(C.normalizeDoc(C.loadDoc(file)));
      const v = await h.evaluate(watchKey, ctx, null);
      const t1 = C.now();
      if (JSON.stringify(v) !== JSON.stringify(last)) {
        send({ type: 'seen', why, value: v, t_ns: t1.toString(), reload_ms: Number(t1 - t0) / 1e6 });
        last = v;
      }
    } finally { busy = false; }
  }

  function poll() {
    let m;
    try { m = fs.statSync(file).mtimeMs; } catch (_) { return; }
    if (m !== mtime) { mtime = m; reload('poll').catch((e) => send({ type: 'error', error: String(e) })); }
  }

  process.on('message', (msg) => {
    if (msg.type === 'poll-start') {
      // Each worker's own phase: the random offset stands for the moment it happened to start.
      const interval = Number(intervalMs);
      setTimeout(() => { poll(); timer = setInterval(poll, interval); }, Math.random() * interval);
      send({ type: 'poll-started' });
    } else if (msg.type === 'poll-stop') {
      if (timer) clearInterval(timer);
      timer = null;
      mtime = fs.statSync(file).mtimeMs;
      send({ type: 'poll-stopped' });
    } else if (msg.type === 'push') {
      mtime = fs.statSync(file).mtimeMs;
      reload('push').catch((e) => send({ type: 'error', error: String(e) }));
    } else if (msg.type === 'exit') {
      process.exit(0);
    }
  });
  send({ type: 'ready', pid: process.pid, value: last });
}

main().catch((e) => { send({ type: 'error', error: String(e && e.stack || e) }); process.exit(1); });
