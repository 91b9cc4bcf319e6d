'use strict';
// Shared by every peer module: reading the flagshm format-1 document and the ids,
// normalising flags into one shape the SDK translators work from, the measuring loop,
// and memory readings. Nothing here opens a socket.

const fs = require('node:fs');

const MAX_FLAGS = 200000;          // bound on what a document may expand to
const MAX_IDS = 1000000;

// ---- document ---------------------------------------------------------------------------

function readJson(path) {
  return JSON.parse(fs.readFileSync(path, 'utf8'));
}

// A format-1 document, or a bare array of flags (a document without segments).
function loadDoc(path) {
  const d = readJson(path);
  const doc = Array.isArray(d) ? { formatVersion: 1, segments: {}, flags: d } : d;
  if (!Array.isArray(doc.flags)) throw new Error(`${path}: no "flags" array`);
  if (doc.flags.length > MAX_FLAGS) throw new Error(`${path}: more than ${MAX_FLAGS} flags`);
  doc.segments = doc.segments || {};
  return doc;
}

// Ids: a JSON array of strings, or one id per line.
function loadIds(path) {
  const text = fs.readFileSync(path, 'utf8');
  let ids;
  const t = text.trimStart();
  if (t.startsWith('[')) ids = JSON.parse(text);
  else if (t.startsWith('{')) ids = JSON.parse(text).ids;
  else ids = text.split('\n').map((s) => s.trim()).filter((s) => s.length > 0);
  if (!Array.isArray(ids) || ids.length === 0) throw new Error(`${path}: no ids`);
  if (ids.length > MAX_IDS) ids = ids.slice(0, MAX_IDS);
  return ids.map(String);
}

// Grow (or shrink) a document to n flags by copying its plain flags under new keys, so the
// multi-process run can hold 10,000 flags of the same shapes as the 1,000 of the case run.
// Flags other flags depend on (prerequisites) are never copied.
function resizeDoc(doc, n) {
  if (n > MAX_FLAGS) throw new Error(`at most ${MAX_FLAGS} flags`);
  if (doc.flags.length >= n) return { ...doc, flags: doc.flags.slice(0, n) };
  const plain = doc.flags.filter((f) => !f.prerequisites || f.prerequisites.length === 0);
  const flags = doc.flags.slice();
  const keys = new Set(flags.map((f) => f.key));
  for (let i = 0; flags.length < n && i < n * 2; i++) {
    const src = plain[i % plain.length];
    const key = `${src.key}.c${Math.floor(i / plain.length) + 1}`.slice(0, 128);
    if (keys.has(key)) continue;
    keys.add(key);
    flags.push({ ...src, key, salt: src.salt || key });
  }
  return { ...doc, flags };
}

// ---- normalised flag model ------------------------------------------------------------------

function thousandths(p) {
  if (p === undefined || p === null) return 100000;
  return Math.round(Number(p) * 1000);
}

// One shape for all translators; `environments` are the writer's business (the bench document
// has none that apply) and are ignored.
function normalizeFlag(f, segments) {
  const isBool = typeof f.defaultValue === 'boolean';
  const offValue = f.offValue !== undefined ? f.offValue : (isBool ? false : null);
  const rules = (f.targeting || []).map((r, i) => ({
    id: r.id || `rule-${i}`,
    priority: r.priority || 0,
    order: i,
    conds: (r.conditions || []).map(normCond),
    segments: (r.segments || []).map((s) => normSegment(s, segments)),
    rollout: thousandths(r.rolloutPercentage),
    variation: r.variation,
    split: r.split ? r.split.map((s) => ({ value: s.value, weight: Math.round(s.weight * 1000) })) : null,
  }));
  rules.sort((a, b) => a.priority - b.priority || a.order - b.order);
  return {
    key: f.key,
    enabled: f.enabled !== false,
    defaultValue: f.defaultValue,
    offValue,
    type: isBool ? 'boolean' : typeof f.defaultValue === 'object' ? 'json' : typeof f.defaultValue,
    rollout: thousandths(f.rolloutPercentage),
    bucketBy: f.bucketBy || 'userId',
    salt: f.salt || f.key,
    rules,
    prerequisites: (f.prerequisites || []).map((p) => ({ key: p.key, value: p.value })),
    version: f.version || 1,
  };
}

function normCond(c) {
  return {
    attribute: c.attribute,
    operator: c.operator,
    value: c.value,
    negate: !!c.negate,
    ci: !!c.caseInsensitive,
  };
}

function normSegment(name, segments) {
  const s = segments[name];
  if (!s) throw new Error(`unknown segment ${name}`);
  return { name, included: s.included || [], conds: (s.conditions || []).map(normCond) };
}

function normalizeDoc(doc) {
  return doc.flags.map((f) => normalizeFlag(f, doc.segments));
}

// Distinct values of a flag, in first-seen order (default, off, rule values, split values).
function flagValues(f) {
  const out = [];
  const seen = new Map();
  const add = (v) => {
    const k = JSON.stringify(v);
    if (!seen.has(k)) { seen.set(k, out.length); out.push(v); }
    return seen.get(k);
  };
  add(f.defaultValue); add(f.offValue);
  for (const r of f.rules) {
    if (r.split) r.split.forEach((s) => add(s.value)); else add(r.variation);
  }
  return { values: out, index: (v) => add(v) };
}

// The alternatives a rule's segment list allows (the context must be in at least one segment;
// a segment holds when the id is included, or when its conditions all hold). Returned as a list
// of extra-condition lists: the rule holds when its own conditions and any one of these hold.
function segmentAlternatives(rule) {
  if (rule.segments.length === 0) return [[]];
  const alts = [];
  for (const s of rule.segments) {
    if (s.included.length > 0) {
      alts.push([{ attribute: 'userId', operator: 'in', value: s.included, negate: false, ci: false }]);
    }
    if (s.conds.length > 0) alts.push(s.conds);
  }
  return alts;
}

// For SDKs without a regex operator: the closest literal test a pattern allows. Understands
// an optional ^, a literal run or a group of literal alternatives "(a|b|c)", a literal run after
// it, and an optional $; anything after that is dropped (then the test is wider than the regex).
// Returns {op: 'equals'|'startsWith'|'endsWith'|'contains', values: [...], exact}, where the test
// holds when any value matches and exact says it means the same as the regex; or null when no
// literal can be found.
function regexToLiteral(pattern) {
  let p = String(pattern);
  const anchoredStart = p.startsWith('^');
  if (anchoredStart) p = p.slice(1);
  let anchoredEnd = false;
  if (p.endsWith('$') && !p.endsWith('\\$')) { anchoredEnd = true; p = p.slice(0, -1); }
  const META = /[\\.^$|?*+()[\]{}]/;
  let i = 0;
  const literalRun = () => {
    let lit = '';
    for (; i < p.length; i++) {
      const ch = p[i];
      if (ch === '\\' && i + 1 < p.length && /[\\.^$|?*+()[\]{}\/-]/.test(p[i + 1])) { lit += p[++i]; continue; }
      if (META.test(ch)) break;
      lit += ch;
    }
    // A quantifier applies to the last character: it is not a fixed part of the match.
    if (i < p.length && /[?*{]/.test(p[i]) && lit.length > 0) { lit = lit.slice(0, -1); i = p.length + 1; }
    return lit;
  };
  let heads = [''];
  const group = /^\(((?:[A-Za-z0-9 _@:,;=%!#&'"<>~`-]+\|)*[A-Za-z0-9 _@:,;=%!#&'"<>~`-]+)\)/.exec(p);
  if (group) { heads = group[1].split('|'); i = group[0].length; }
  const tail = i <= p.length ? literalRun() : '';
  const exact = i === p.length;
  const values = heads.map((h) => h + tail);
  if (values.some((v) => v.length === 0)) return null;
  let op = 'contains';
  if (exact && anchoredStart && anchoredEnd) op = 'equals';
  else if (anchoredStart) op = 'startsWith';
  else if (exact && anchoredEnd) op = 'endsWith';
  return { op, values, exact };
}

function escapeRegex(s) {
  return String(s).replace(/[\\^$.*+?()[\]{}|\/-]/g, '\\$&');
}

// ---- measuring ----------------------------------------------------------------------------

const now = () => process.hrtime.bigint();

function median(xs) {
  const s = xs.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// One run: call fn(i) in batches until `seconds` have passed, bounded by maxCalls.
// Returns ns per call. A different context each call is the caller's job (i indexes the ids).
function timeSync(fn, seconds, maxCalls) {
  const limit = BigInt(Math.round(seconds * 1e9));
  const batch = 1000;
  let calls = 0;
  let sink = 0;
  const t0 = now();
  let el = 0n;
  while (calls < maxCalls) {
    for (let j = 0; j < batch; j++) { if (fn(calls + j)) sink++; }
    calls += batch;
    el = now() - t0;
    if (el >= limit) break;
  }
  return { ns: Number(el) / calls, calls, sink };
}

async function timeAsync(fn, seconds, maxCalls) {
  const limit = BigInt(Math.round(seconds * 1e9));
  const batch = 1000;
  let calls = 0;
  let sink = 0;
  const t0 = now();
  let el = 0n;
  while (calls < maxCalls) {
    for (let j = 0; j < batch; j++) { if (await fn(calls + j)) sink++; }
    calls += batch;
    el = now() - t0;
    if (el >= limit) break;
  }
  return { ns: Number(el) / calls, calls, sink };
}

// ---- memory -------------------------------------------------------------------------------

function settle() {
  if (global.gc) { for (let i = 0; i < 3; i++) global.gc(); }
}

function rssBytes() { return process.memoryUsage().rss; }

// RSS and PSS of a process from /proc (Linux); PSS needs smaps_rollup (kernel >= 4.14).
function procMemory(pid) {
  const out = { rss: null, pss: null };
  try {
    const t = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const rss = /^Rss:\s+(\d+) kB/m.exec(t);
    const pss = /^Pss:\s+(\d+) kB/m.exec(t);
    if (rss) out.rss = Number(rss[1]) * 1024;
    if (pss) out.pss = Number(pss[1]) * 1024;
  } catch (_) {
    try {
      const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      const m = /^VmRSS:\s+(\d+) kB/m.exec(s);
      if (m) out.rss = Number(m[1]) * 1024;
    } catch (_) { /* process gone */ }
  }
  return out;
}

const MB = 1024 * 1024;

// The installed version of a package (some packages do not export their package.json).
function pkgVersion(pkg) {
  const p = require('node:path').join(__dirname, 'node_modules', pkg, 'package.json');
  return JSON.parse(fs.readFileSync(p, 'utf8')).version;
}

module.exports = {
  loadDoc, loadIds, resizeDoc, readJson, normalizeDoc, normalizeFlag, flagValues,
  segmentAlternatives, regexToLiteral, escapeRegex, median, timeSync, timeAsync,
  settle, rssBytes, procMemory, now, MB, pkgVersion,
};
