'use strict';
// GrowthBook JS SDK: one GrowthBookClient (the multi-user server client) given the features
// JSON with initSync (no clientKey, no polling, no streaming: nothing to fetch), evaluated with
// the synchronous `client.isOn(key, {attributes})`.
//
// A flagshm rule becomes a force rule with a MongoDB-style condition and `coverage` (a bucket
// outside coverage skips the rule, as flagshm falls through); the flag's own rollout is a last
// force rule with coverage. Hashing is GrowthBook's own (hashVersion 2, seeded with the salt).

const { segmentAlternatives, escapeRegex } = require('./common');

const { pkgVersion } = require('./common');
const PKG = '@growthbook/growthbook';
let GB = null;

// One flagshm condition -> {attribute: {operators}}.
function operators(c, notes) {
  const v = c.value;
  switch (c.operator) {
    case 'equals':
      if (c.ci && typeof v === 'string') return { $regexi: `^${escapeRegex(v)}$` };
      return { $eq: v };
    case 'notEquals':
      if (c.ci && typeof v === 'string') return { $not: { $regexi: `^${escapeRegex(v)}$` } };
      return { $ne: v };
    case 'in': return c.ci ? { $ini: v } : { $in: v };
    case 'notIn': return c.ci ? { $nini: v } : { $nin: v };
    case 'contains':
      notes.add('contains: GrowthBook has no substring operator; a $regex on the escaped literal');
      return { [c.ci ? '$regexi' : '$regex']: escapeRegex(v) };
    case 'notContains':
      notes.add('contains: GrowthBook has no substring operator; a $regex on the escaped literal');
      return { $not: { [c.ci ? '$regexi' : '$regex']: escapeRegex(v) } };
    case 'startsWith': return { [c.ci ? '$regexi' : '$regex']: `^${escapeRegex(v)}` };
    case 'endsWith': return { [c.ci ? '$regexi' : '$regex']: `${escapeRegex(v)}$` };
    case 'matches': return { [c.ci ? '$regexi' : '$regex']: v };
    case 'greaterThan': return { $gt: v };
    case 'greaterThanOrEqual': return { $gte: v };
    case 'lessThan': return { $lt: v };
    case 'lessThanOrEqual': return { $lte: v };
    case 'semverEqual': return { $veq: v };
    case 'semverGreaterThan': return { $vgt: v };
    case 'semverLessThan': return { $vlt: v };
    case 'before': case 'after':
      notes.add('before/after: GrowthBook has no date operator; ISO-8601 strings compared with $lt/$gt');
      return { [c.operator === 'before' ? '$lt' : '$gt']: typeof v === 'number' ? new Date(v * 1000).toISOString() : v };
    default:
      throw new Error(`GrowthBook: no translation for operator ${c.operator}`);
  }
}

function condition(c, notes) {
  let ops = operators(c, notes);
  // flagshm: a missing attribute makes every condition false, negate included.
  if (c.negate) ops = { $exists: true, $not: ops };
  else if (ops.$ne !== undefined || ops.$nin || ops.$nini || ops.$not) ops = { $exists: true, ...ops };
  return { [c.attribute]: ops };
}

function conj(conds, notes) {
  const parts = conds.map((c) => condition(c, notes));
  if (parts.length === 0) return undefined;
  return parts.length === 1 ? parts[0] : { $and: parts };
}

function translate(f, notes) {
  const rules = [];
  const hash = { hashAttribute: f.bucketBy, seed: f.salt, hashVersion: 2 };
  if (f.enabled) {
    for (const r of f.rules) {
      const alts = segmentAlternatives(r).map((alt) => conj(r.conds.concat(alt), notes));
      const cond = alts.length === 1 ? alts[0] : { $or: alts };
      const withCond = cond ? { condition: cond } : {};
      if (r.split) {
        rules.push({ id: r.id, ...withCond, key: `${f.key}.${r.id}`, variations: r.split.map((s) => s.value),
          weights: r.split.map((s) => s.weight / 100000), coverage: 1, ...hash });
      } else {
        rules.push({ id: r.id, ...withCond, force: r.variation,
          ...(r.rollout < 100000 ? { coverage: r.rollout / 100000 } : {}), ...hash });
      }
    }
    if (f.rollout > 0) {
      rules.push({ id: 'default-rollout', force: f.defaultValue,
        ...(f.rollout < 100000 ? { coverage: f.rollout / 100000 } : {}), ...hash });
    }
  }
  if (f.prerequisites.length > 0) {
    // GrowthBook's prerequisites are per rule ("parentConditions"); put them on every rule.
    const parentConditions = f.prerequisites.map((p) => ({ id: p.key, condition: { value: p.value }, gate: true }));
    for (const r of rules) r.parentConditions = parentConditions;
  }
  return { defaultValue: f.offValue, rules };
}

function translateAll(flags, notes) {
  const features = {};
  for (const f of flags) features[f.key] = translate(f, notes);
  return features;
}

module.exports = {
  name: 'growthbook',
  pkg: PKG,
  api: 'client.isOn(key, {attributes})',
  isAsync: false,
  load() { GB = require(PKG); return pkgVersion(PKG); },

  async create(flags) {
    const notes = new Set();
    const client = new GB.GrowthBookClient({ enableDevMode: false });
    client.initSync({ payload: { features: translateAll(flags, notes) } });
    return {
      notes,
      context(userId, attrs) { return { attributes: { userId, ...attrs } }; },
      evaluate(key, ctx) { return client.isOn(key, ctx); },
      // A full payload, as a poll or a streamed payload would deliver it.
      async reload(newFlags) { await client.setPayload({ features: translateAll(newFlags, notes) }); },
      close() { client.destroy && client.destroy(); },
    };
  },
};
