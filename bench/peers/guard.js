'use strict';
// Refuses any outgoing connection that is not to the loopback interface, and counts attempts,
// so a run proves the SDKs stayed offline (Unleash's loopback URL must see zero connects).

const net = require('node:net');
const dns = require('node:dns');

const attempts = { loopback: 0, refused: [] };

function isLoopback(host) {
  return host === undefined || host === 'localhost' || host === '::1' || /^127\./.test(String(host));
}

function install() {
  const connect = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function guardedConnect(...args) {
    const o = typeof args[0] === 'object' && args[0] !== null ? (Array.isArray(args[0]) ? args[0][0] : args[0]) : { port: args[0], host: args[1] };
    if (o && o.path) return connect.apply(this, args); // a Unix socket (IPC channel)
    const host = o && o.host;
    if (!isLoopback(host)) {
      attempts.refused.push(String(host));
      throw new Error(`guard: connection to ${host} refused (only 127.0.0.1 is allowed at run time)`);
    }
    attempts.loopback++;
    return connect.apply(this, args);
  };
  const lookup = dns.lookup;
  dns.lookup = function guardedLookup(host, ...rest) {
    if (!isLoopback(host)) {
      attempts.refused.push(String(host));
      const cb = rest[rest.length - 1];
      if (typeof cb === 'function') { process.nextTick(cb, new Error(`guard: lookup of ${host} refused`)); return undefined; }
    }
    return lookup.call(this, host, ...rest);
  };
}

module.exports = { install, attempts };
