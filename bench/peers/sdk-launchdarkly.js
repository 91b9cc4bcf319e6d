'use strict';
// LaunchDarkly server SDK, offline: TestData as the update processor, every flag given as a full
// flag data model (usePreconfiguredFlag), events and diagnostics off. Public evaluation is
// `await client.variation()`, a Promise per call, which is what users pay.

const { createHash } = require('node:crypto');
const { flagValues, segmentAlternatives } = require('./common');

// A digest per flag (not the JSON itself, which would add the harness's memory to the SDK's).
const digest = (m) => createHash('sha1').update(JSON.stringify(m)).digest('base64');

const { pkgVersion } = require('./common');
const PKG = '@launchdarkly/node-server-sdk';
let ld = null;

// flagshm operator -> LaunchDarkly clause operator (values list, negate).
function clause(c, notes) {
  const attr = c.attribute === 'userId' ? 'key' : c.attribute;
  const base = { contextKind: 'user', attribute: attr, negate: c.negate };
  if (c.ci) notes.add('caseInsensitive: LaunchDarkly clauses are case-sensitive; compared as written');
  switch (c.operator) {
    case 'equals': return { ...base, op: 'in', values: [c.value] };
    case 'notEquals': return { ...base, op: 'in', values: [c.value], negate: !c.negate };
    case 'in': return { ...base, op: 'in', values: c.value };
    case 'notIn': return { ...base, op: 'in', values: c.value, negate: !c.negate };
    case 'contains': return { ...base, op: 'contains', values: [c.value] };
    case 'notContains': return { ...base, op: 'contains', values: [c.value], negate: !c.negate };
    case 'startsWith': return { ...base, op: 'startsWith', values: [c.value] };
    case 'endsWith': return { ...base, op: 'endsWith', values: [c.value] };
    case 'matches':
      // JavaScript RegExp, not PCRE2: the bench's patterns are in the common subset.
      return { ...base, op: 'matches', values: [c.value] };
    case 'greaterThan': case 'greaterThanOrEqual': case 'lessThan': case 'lessThanOrEqual':
      return { ...base, op: c.operator, values: [c.value] };
    case 'semverEqual': case 'semverGreaterThan': case 'semverLessThan':
      return { ...base, op: c.operator, values: [c.value] };
    case 'before': case 'after':
      return { ...base, op: c.operator, values: [typeof c.value === 'number' ? c.value * 1000 : c.value] };
    default:
      throw new Error(`LaunchDarkly: no translation for operator ${c.operator}`);
  }
}

function bucketBy(f) {
  return f.bucketBy === 'userId' ? undefined : f.bucketBy;
}

function rolloutOf(f, bands, idx) {
  const r = { variations: bands.map((b) => ({ variation: idx(b.value), weight: b.weight })) };
  const bb = bucketBy(f);
  if (bb) r.bucketBy = bb;
  return r;
}

// One flagshm flag -> LaunchDarkly flag data model.
function translate(f, notes) {
  const { values, index } = flagValues(f);
  const rules = [];
  for (const r of f.rules) {
    let serve;
    if (r.split) {
      serve = { rollout: rolloutOf(f, r.split, index) };
    } else if (r.rollout >= 100000) {
      serve = { variation: index(r.variation) };
    } else {
      // LaunchDarkly serves a matched rule's rollout to everyone the rule matches; flagshm
      // falls through to the next rule for buckets outside it. The outside band serves offValue.
      notes.add('rule rollout: LaunchDarkly does not fall through past a matched rule with a partial rollout; outside the rollout it serves offValue');
      serve = { rollout: rolloutOf(f, [{ value: r.variation, weight: r.rollout }, { value: f.offValue, weight: 100000 - r.rollout }], index) };
    }
    const alts = segmentAlternatives(r);
    if (alts.length > 1) notes.add('segments: expanded into one LaunchDarkly rule per segment alternative');
    alts.forEach((alt, i) => {
      rules.push({ id: `${r.id}${i ? `#${i}` : ''}`, clauses: r.conds.concat(alt).map((c) => clause(c, notes)), ...serve, trackEvents: false });
    });
  }
  let fallthrough;
  if (f.rollout >= 100000) fallthrough = { variation: index(f.defaultValue) };
  else if (f.rollout <= 0) fallthrough = { variation: index(f.offValue) };
  else fallthrough = { rollout: rolloutOf(f, [{ value: f.defaultValue, weight: f.rollout }, { value: f.offValue, weight: 100000 - f.rollout }], index) };
  return {
    key: f.key,
    version: f.version,
    on: f.enabled,
    variations: values,
    offVariation: index(f.offValue),
    fallthrough,
    rules,
    targets: [],
    contextTargets: [],
    prerequisites: f.prerequisites.map((p) => ({ key: p.key, variation: 0 })),
    salt: f.salt,
    trackEvents: false,
    trackEventsFallthrough: false,
    clientSide: false,
    deleted: false,
  };
}

function fixPrerequisites(models, byKey) {
  // A prerequisite names the other flag's variation index; resolve it against that flag.
  for (const m of models) {
    for (const p of m.prerequisites) {
      const other = byKey.get(p.key);
      const want = m._prereqValues.get(p.key);
      const i = other ? other.variations.findIndex((v) => JSON.stringify(v) === JSON.stringify(want)) : -1;
      p.variation = i < 0 ? 0 : i;
    }
    delete m._prereqValues;
  }
}

function translateAll(flags, notes) {
  const models = flags.map((f) => {
    const m = translate(f, notes);
    m._prereqValues = new Map(f.prerequisites.map((p) => [p.key, p.value]));
    return m;
  });
  fixPrerequisites(models, new Map(models.map((m) => [m.key, m])));
  return models;
}

module.exports = {
  name: 'launchdarkly',
  pkg: PKG,
  api: 'await client.variation()',
  isAsync: true,
  load() { ld = require(PKG); return pkgVersion(PKG); },

  async create(flags) {
    const notes = new Set();
    const td = new ld.integrations.TestData();
    const models = translateAll(flags, notes);
    const current = new Map();
    for (const m of models) { td.usePreconfiguredFlag(m); current.set(m.key, digest(m)); }
    const client = ld.init('sdk-offline-bench', {
      updateProcessor: td.getFactory(),
      sendEvents: false,
      diagnosticOptOut: true,
      stream: false,
      // LaunchDarkly formats an error line for every unknown flag; it is formatted and dropped
      // here, as a logger that filters would do, rather than written to the terminal.
      logger: ld.basicLogger({ level: 'error', destination: () => {} }),
    });
    await client.waitForInitialization({ timeout: 30 });
    return {
      notes,
      context(userId, attrs) { return { kind: 'user', key: userId, userId, ...attrs }; },
      evaluate(key, ctx, fallback) { return client.variation(key, ctx, fallback); },
      // LaunchDarkly's stream sends a "patch" per changed flag; so does this: the new file is
      // translated whole, and only flags whose data model changed are upserted. (Upserting all
      // 10,000 through TestData costs seconds per worker, which no deployment pays per change.)
      async reload(newFlags) {
        const ms = translateAll(newFlags, notes);
        const changed = [];
        for (const m of ms) {
          const j = digest(m);
          if (current.get(m.key) !== j) { current.set(m.key, j); changed.push(m); }
        }
        await Promise.all(changed.map((m) => td.usePreconfiguredFlag(m)));
      },
      close() { client.close(); },
    };
  },
};
