'use strict';
// Unleash Node SDK, offline: the Unleash class with `bootstrap` data, refreshInterval 0 (so the
// poller never starts), metrics disabled, an in-memory storage provider (no backup file), and a
// loopback URL that is never called. Evaluation is the synchronous `isEnabled()`.
//
// Unleash has toggles, not typed values: a feature is on when any of its strategies is on, each
// strategy being a set of AND-ed constraints plus a percentage rollout (1% resolution). A
// flagshm boolean flag maps onto that directly: every rule that serves `true` becomes a
// flexibleRollout strategy (a bucket outside its rollout falls on to the next strategy, as in
// flagshm), and the flag's own rollout becomes the last one.

const { segmentAlternatives } = require('./common');

const { pkgVersion } = require('./common');
const PKG = 'unleash-client';
const LOOPBACK_URL = 'http://127.0.0.1:9/unleash/api/'; // discard port; never called (refreshInterval 0)
let U = null;

const TOP_LEVEL = new Set(['userId', 'sessionId', 'remoteAddress', 'environment', 'appName', 'currentTime']);

function constraint(c, notes) {
  const base = { contextName: c.attribute, inverted: c.negate, caseInsensitive: c.ci, values: [] };
  const str = (v) => String(v);
  switch (c.operator) {
    case 'equals':
      if (typeof c.value === 'number') return { ...base, operator: 'NUM_EQ', value: c.value };
      return { ...base, operator: 'IN', values: [str(c.value)] };
    case 'notEquals':
      if (typeof c.value === 'number') return { ...base, operator: 'NUM_EQ', value: c.value, inverted: !c.negate };
      return { ...base, operator: 'NOT_IN', values: [str(c.value)] };
    case 'in':
      if (c.value.some((v) => typeof v === 'number')) notes.add('in-list with numbers: Unleash compares context values as strings');
      return { ...base, operator: 'IN', values: c.value.map(str) };
    case 'notIn': return { ...base, operator: 'NOT_IN', values: c.value.map(str) };
    case 'contains': return { ...base, operator: 'STR_CONTAINS', values: [str(c.value)] };
    case 'notContains': return { ...base, operator: 'STR_CONTAINS', values: [str(c.value)], inverted: !c.negate };
    case 'startsWith': return { ...base, operator: 'STR_STARTS_WITH', values: [str(c.value)] };
    case 'endsWith': return { ...base, operator: 'STR_ENDS_WITH', values: [str(c.value)] };
    case 'matches': return { ...base, operator: 'REGEX', value: str(c.value) }; // RE2 syntax (re2js)
    case 'greaterThan': return { ...base, operator: 'NUM_GT', value: c.value };
    case 'greaterThanOrEqual': return { ...base, operator: 'NUM_GTE', value: c.value };
    case 'lessThan': return { ...base, operator: 'NUM_LT', value: c.value };
    case 'lessThanOrEqual': return { ...base, operator: 'NUM_LTE', value: c.value };
    case 'semverEqual': return { ...base, operator: 'SEMVER_EQ', value: c.value };
    case 'semverGreaterThan': return { ...base, operator: 'SEMVER_GT', value: c.value };
    case 'semverLessThan': return { ...base, operator: 'SEMVER_LT', value: c.value };
    case 'before': case 'after': {
      const v = typeof c.value === 'number' ? new Date(c.value * 1000).toISOString() : c.value;
      return { ...base, operator: c.operator === 'before' ? 'DATE_BEFORE' : 'DATE_AFTER', value: v };
    }
    default:
      throw new Error(`Unleash: no translation for operator ${c.operator}`);
  }
}

function rolloutStrategy(f, pct, constraints, variants) {
  const rollout = pct / 1000;
  return {
    name: 'flexibleRollout',
    parameters: { rollout: String(rollout), stickiness: f.bucketBy, groupId: f.salt },
    constraints,
    ...(variants ? { variants } : {}),
  };
}

function translate(f, notes) {
  const isBool = f.type === 'boolean';
  // Which served values count as "on": true for boolean flags; for other types, anything other
  // than offValue, carried as a variant payload.
  const on = (v) => (isBool ? v === true : JSON.stringify(v) !== JSON.stringify(f.offValue));
  const variantsFor = (v) => (isBool ? undefined
    : [{ name: 'value', weight: 1000, stickiness: f.bucketBy, payload: { type: 'json', value: JSON.stringify(v) } }]);
  if (!isBool) notes.add('non-boolean flags: an Unleash toggle with the value as a variant payload');
  if (f.rollout % 1000 !== 0 || f.rules.some((r) => r.rollout % 1000 !== 0)) {
    notes.add('rollout: Unleash buckets in whole percents (1..100)');
  }
  const strategies = [];
  for (const r of f.rules) {
    let pct = r.rollout;
    let value = r.variation;
    if (r.split) {
      const band = r.split.find((s) => on(s.value));
      notes.add('split: Unleash strategy variants are not bands of one bucket; the "on" share becomes the strategy rollout');
      pct = band ? r.split.filter((s) => on(s.value)).reduce((a, s) => a + s.weight, 0) : 0;
      value = band ? band.value : f.offValue;
    }
    if (!on(value)) {
      // A strategy can only turn a toggle on; a rule that serves "off" ahead of later rules has
      // no Unleash form (the later strategies still turn it on).
      notes.add(`rule serving offValue (${f.key}/${r.id}): no Unleash form, dropped`);
      continue;
    }
    for (const alt of segmentAlternatives(r)) {
      strategies.push(rolloutStrategy(f, pct, r.conds.concat(alt).map((c) => constraint(c, notes)), variantsFor(value)));
    }
  }
  if (on(f.defaultValue) && f.rollout > 0) {
    strategies.push(f.rollout >= 100000 && f.bucketBy === 'userId' && isBool
      ? { name: 'default', parameters: {}, constraints: [] }
      : rolloutStrategy(f, f.rollout, [], variantsFor(f.defaultValue)));
  }
  return {
    name: f.key,
    description: '',
    type: 'release',
    project: 'default',
    stale: false,
    impressionData: false,
    // No strategies means "on" in Unleash; a flag nothing can turn on is disabled instead.
    enabled: f.enabled && strategies.length > 0,
    strategies,
    variants: [],
    dependencies: f.prerequisites.map((p) => ({ feature: p.key, enabled: p.value !== false })),
  };
}

function translateAll(flags, notes) {
  if (flags.some((f) => f.prerequisites.some((p) => typeof p.value !== 'boolean'))) {
    notes.add('prerequisites on non-boolean values: Unleash dependencies are on/off only');
  }
  return flags.map((f) => translate(f, notes));
}

module.exports = {
  name: 'unleash',
  pkg: PKG,
  api: 'unleash.isEnabled()',
  isAsync: false,
  load() { U = require(PKG); return pkgVersion(PKG); },

  async create(flags) {
    const notes = new Set();
    const features = translateAll(flags, notes);
    const unleash = new U.Unleash({
      appName: 'flagshm-bench',
      url: LOOPBACK_URL,
      refreshInterval: 0,
      disableMetrics: true,
      skipInstanceCountWarning: true,
      storageProvider: new U.InMemStorageProvider(),
      bootstrap: { data: features },
    });
    unleash.on('error', (e) => process.stderr.write(`unleash: ${e && e.message}\n`));
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('unleash: not ready after 30 s')), 30000);
      unleash.once('ready', () => { clearTimeout(t); resolve(); });
    });
    return {
      notes,
      context(userId, attrs) {
        const ctx = { userId, properties: {} };
        for (const [k, v] of Object.entries(attrs)) {
          if (TOP_LEVEL.has(k)) ctx[k] = v; else ctx.properties[k] = v;
        }
        return ctx;
      },
      evaluate(key, ctx, fallback) { return unleash.isEnabled(key, ctx, fallback); },
      // A full reload through the repository's save path, the one a poll response takes.
      async reload(newFlags) {
        const fs2 = translateAll(newFlags, notes);
        await unleash.repository.save({ type: 'full', version: 2, features: fs2, segments: [] }, true);
      },
      close() { unleash.destroy(); },
    };
  },
};
