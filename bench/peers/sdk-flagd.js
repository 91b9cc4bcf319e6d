'use strict';
// flagd's in-process evaluator (@openfeature/flagd-core): FlagdCore.setConfigurations(json) with
// a flagd flag definition file, then the synchronous `resolveBooleanEvaluation`.
//
// A flagshm flag becomes one JsonLogic `if` chain: each rule's conditions in priority order,
// then the flag's rollout as a `fractional` split. flagd's fractional hashes the string the
// first argument gives, so the bucketing input is salt ":" id as in flagshm (the hash and the
// bucket arithmetic are flagd's own). flagd has no regex operator: a pattern becomes the
// closest literal test (starts_with / ends_with / substring / equality) and is reported.

const { flagValues, segmentAlternatives, regexToLiteral } = require('./common');

const { pkgVersion } = require('./common');
const PKG = '@openfeature/flagd-core';
let F = null;

function literalTest(op, a, v) {
  switch (op) {
    case 'equals': return { '===': [a, v] };
    case 'startsWith': return { starts_with: [a, v] };
    case 'endsWith': return { ends_with: [a, v] };
    case 'contains': return { in: [v, a] }; // JsonLogic: string in string is a substring test
    default: throw new Error(op);
  }
}

function test(c, notes) {
  const a = { var: c.attribute };
  const v = c.value;
  if (c.ci) notes.add('caseInsensitive: flagd has no case folding; compared as written');
  switch (c.operator) {
    case 'equals': return { '===': [a, v] };
    case 'notEquals': return { '!==': [a, v] };
    case 'in': return { in: [a, v] };
    case 'notIn': return { '!': { in: [a, v] } };
    case 'contains': return { in: [v, a] };
    case 'notContains': return { '!': { in: [v, a] } };
    case 'startsWith': return { starts_with: [a, v] };
    case 'endsWith': return { ends_with: [a, v] };
    case 'matches': {
      const lit = regexToLiteral(v);
      if (!lit) {
        notes.add(`matches: flagd has no regex operator and /${v}/ has no literal part; the condition never holds`);
        return false;
      }
      const shown = lit.values.map((x) => `"${x}"`).join(' or ');
      notes.add(`matches: flagd has no regex operator; /${v}/ tested as ${lit.op} ${shown}${lit.exact ? ' (same meaning)' : ' (wider than the regex)'}`);
      const tests = lit.values.map((x) => literalTest(lit.op, a, x));
      return tests.length === 1 ? tests[0] : { or: tests };
    }
    case 'greaterThan': return { '>': [a, v] };
    case 'greaterThanOrEqual': return { '>=': [a, v] };
    case 'lessThan': return { '<': [a, v] };
    case 'lessThanOrEqual': return { '<=': [a, v] };
    case 'semverEqual': return { sem_ver: [a, '=', v] };
    case 'semverGreaterThan': return { sem_ver: [a, '>', v] };
    case 'semverLessThan': return { sem_ver: [a, '<', v] };
    case 'before': case 'after':
      notes.add('before/after: flagd has no date operator; ISO-8601 strings compared with < / >');
      return { [c.operator === 'before' ? '<' : '>']: [a, typeof v === 'number' ? new Date(v * 1000).toISOString() : v] };
    default:
      throw new Error(`flagd: no translation for operator ${c.operator}`);
  }
}

function condition(c, notes) {
  const t = test(c, notes);
  const neg = c.negate || ['notEquals', 'notIn', 'notContains'].includes(c.operator);
  // flagshm: a missing attribute makes every condition false, negate included.
  const present = { '!==': [{ var: c.attribute }, null] };
  if (c.negate) return { and: [present, { '!': t }] };
  return neg ? { and: [present, t] } : t;
}

function conj(conds, notes) {
  const parts = conds.map((c) => condition(c, notes));
  if (parts.length === 0) return true;
  return parts.length === 1 ? parts[0] : { and: parts };
}

function translate(f, notes) {
  const { values, index } = flagValues(f);
  const variants = {};
  values.forEach((v, i) => { variants[`v${i}`] = v; });
  const name = (v) => `v${index(v)}`;
  const bucketInput = { cat: [`${f.salt}:`, { var: f.bucketBy }] };
  const band = (pairs) => ({ fractional: [bucketInput, ...pairs] });
  const inside = (pct) => ({ '===': [band([['in', pct], ['out', 100000 - pct]]), 'in'] });

  let tail;
  if (f.rollout >= 100000) tail = name(f.defaultValue);
  else if (f.rollout <= 0) tail = name(f.offValue);
  else tail = band([[name(f.defaultValue), f.rollout], [name(f.offValue), 100000 - f.rollout]]);

  const chain = [];
  for (const r of f.rules) {
    const alts = segmentAlternatives(r).map((alt) => conj(r.conds.concat(alt), notes));
    let cond = alts.length === 1 ? alts[0] : { or: alts };
    let serve;
    if (r.split) {
      serve = band(r.split.map((s) => [name(s.value), s.weight]));
      cond = { and: [cond, { '!==': [{ var: f.bucketBy }, null] }] };
    } else {
      serve = name(r.variation);
      if (r.rollout < 100000) cond = { and: [cond, inside(r.rollout)] };
    }
    chain.push(cond, serve);
  }
  let targeting = chain.length ? { if: [...chain, tail] } : (typeof tail === 'string' ? undefined : tail);
  if (f.prerequisites.length > 0) {
    notes.add('prerequisites: flagd has no prerequisite; ignored');
  }
  return {
    state: 'ENABLED', // flagd's DISABLED makes the caller's default win with an error; flagshm serves offValue
    variants,
    defaultVariant: f.enabled ? (typeof tail === 'string' && !chain.length ? tail : name(f.offValue)) : name(f.offValue),
    ...(f.enabled && targeting ? { targeting } : {}),
  };
}

function translateAll(flags, notes) {
  const out = { flags: {} };
  for (const f of flags) out.flags[f.key] = translate(f, notes);
  return JSON.stringify(out);
}

const quietLogger = { error() {}, warn() {}, info() {}, debug() {} };

module.exports = {
  name: 'flagd',
  pkg: PKG,
  api: 'core.resolveBooleanEvaluation() (sync)',
  isAsync: false,
  load() { F = require(PKG); return pkgVersion(PKG); },

  async create(flags) {
    const notes = new Set();
    const core = new F.FlagdCore(undefined, quietLogger);
    core.setConfigurations(translateAll(flags, notes));
    return {
      notes,
      context(userId, attrs) { return { targetingKey: userId, userId, ...attrs }; },
      evaluate(key, ctx, fallback) { return core.resolveBooleanEvaluation(key, fallback, ctx, quietLogger).value; },
      // flagd's sync streams deliver the whole flag set; setConfigurations replaces it.
      async reload(newFlags) { core.setConfigurations(translateAll(newFlags, notes)); },
      close() {},
    };
  },
};
