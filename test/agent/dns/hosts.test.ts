// The hosts file as glibc's getaddrinfo reads it, and as Node's dns.reverse (c-ares) reads it. The expectations
// come from running both on Debian 12 against the same files.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  canonicalAddress,
  formatIPv6,
  ipv6Bytes,
  lookupHosts,
  parseHostConfMulti,
  parseHosts,
  reverseHosts,
} from '../../../src/agent/dns/hosts.js';

const HOSTS = parseHosts(`# comment
10.0.0.1   web web-alias.ns   # trailing comment other
fd00::1    web
10.0.0.2   WEB
10.0.0.1   web
 10.0.0.3\tindented
fd00:0:0::9 v6host
::ffff:10.1.1.1 mapped
127.1      short-form
fe80::1%lo scoped
;10.0.0.5  semicolon
10.0.0.6
10.0.0.7   other # web
`);

const addresses = (found: { address: string; family: number }[]) => found.map((entry) => `${entry.address}/${entry.family}`);

test('every matching line in file order with multi on, duplicates included', () => {
  assert.deepEqual(addresses(lookupHosts(HOSTS, 'web', 0, true)), ['10.0.0.1/4', 'fd00::1/6', '10.0.0.2/4', '10.0.0.1/4']);
  assert.deepEqual(addresses(lookupHosts(HOSTS, 'web', 4, true)), ['10.0.0.1/4', '10.0.0.2/4', '10.0.0.1/4']);
  assert.deepEqual(addresses(lookupHosts(HOSTS, 'web', 6, true)), ['fd00::1/6']);
});

test('only the first matching line of the family with multi off (glibc default)', () => {
  assert.deepEqual(addresses(lookupHosts(HOSTS, 'web', 0, false)), ['10.0.0.1/4']);
  assert.deepEqual(addresses(lookupHosts(HOSTS, 'web', 6, false)), ['fd00::1/6']);
});

test('names and aliases match case-insensitively, but a trailing dot does not match', () => {
  assert.deepEqual(addresses(lookupHosts(HOSTS, 'Web-Alias.NS', 0, true)), ['10.0.0.1/4']);
  assert.deepEqual(lookupHosts(HOSTS, 'web.', 0, true), []);
});

test('comments start at #, anywhere; a semicolon is no comment, so that line is invalid', () => {
  assert.deepEqual(lookupHosts(HOSTS, 'other', 0, true).length, 1);
  assert.deepEqual(lookupHosts(HOSTS, 'semicolon', 0, true), []);
  assert.deepEqual(addresses(lookupHosts(HOSTS, 'indented', 0, true)), ['10.0.0.3/4']);
});

test('addresses need inet_pton syntax; IPv6 is printed as inet_ntop does', () => {
  assert.deepEqual(lookupHosts(HOSTS, 'short-form', 0, true), []);
  assert.deepEqual(lookupHosts(HOSTS, 'scoped', 0, true), []);
  assert.deepEqual(addresses(lookupHosts(HOSTS, 'v6host', 0, true)), ['fd00::9/6']);
  assert.deepEqual(lookupHosts(HOSTS, 'v6host', 4, true), []);
});

test('an IPv4-mapped line answers family 4 with its IPv4 address', () => {
  assert.deepEqual(addresses(lookupHosts(HOSTS, 'mapped', 4, true)), ['10.1.1.1/4']);
  assert.deepEqual(addresses(lookupHosts(HOSTS, 'mapped', 0, true)), ['::ffff:10.1.1.1/6']);
  assert.deepEqual(addresses(lookupHosts(HOSTS, 'mapped', 6, true)), ['::ffff:10.1.1.1/6']);
});

test('reverse: the merged entry names minus the first, as Node reverses through c-ares', () => {
  const cases: [string, string, (string[] | undefined)[]][] = [
    ['10.0.0.1 a\n10.0.0.2 a b\n', '10.0.0.1 10.0.0.2', [['b'], ['b']]],
    ['10.0.0.1 a b\n10.0.0.1 b c\n', '10.0.0.1', [['b', 'c']]],
    ['10.0.0.1 A\n10.0.0.1 a B\n', '10.0.0.1', [['B']]],
    ['10.0.0.1 x\n10.0.0.9 y\n10.0.0.9 x z\n', '10.0.0.1 10.0.0.9', [[], ['z']]],
    ['10.0.0.1 x\n::1 x y\n', '10.0.0.1 ::1', [['y'], ['y']]],
    ['10.0.0.1 x # y z\n10.0.0.1\n', '10.0.0.1 10.0.0.2', [[], undefined]],
    ['fd00::1 v6name v6alias\n', 'fd00:0:0::1', [['v6alias']]],
  ];
  for (const [text, queried, expected] of cases) {
    const hosts = parseHosts(text);
    assert.deepEqual(queried.split(' ').map((address) => reverseHosts(hosts, address)), expected, text);
  }
});

test('host.conf: multi on/off, the last line wins, off by default', () => {
  assert.equal(parseHostConfMulti('multi on\n'), true);
  assert.equal(parseHostConfMulti('# The "order" line is only used by old versions of the C library.\norder hosts,bind\nmulti on\n'), true);
  assert.equal(parseHostConfMulti('multi on\nmulti off\n'), false);
  assert.equal(parseHostConfMulti('MULTI ON'), true);
  assert.equal(parseHostConfMulti(''), false);
});

test('IPv6 text as inet_ntop prints it', () => {
  const cases: [string, string][] = [
    ['::', '::'],
    ['1::', '1::'],
    ['fd00:0:0::1', 'fd00::1'],
    ['FE80::0001', 'fe80::1'],
    ['::ffff:1.2.3.4', '::ffff:1.2.3.4'],
    ['0:0:0:0:0:ffff:a01:101', '::ffff:10.1.1.1'],
    ['::1.2.3.4', '::1.2.3.4'],
    ['::ffff:0:1.2.3.4', '::ffff:0:102:304'],
    ['1:0:0:1:0:0:0:1', '1:0:0:1::1'],
    ['1:0:0:1:0:0:1:1', '1::1:0:0:1:1'],
    ['2001:db8::1:0:0:1', '2001:db8::1:0:0:1'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
  ];
  for (const [text, expected] of cases) assert.equal(formatIPv6(ipv6Bytes(text) ?? new Uint8Array(16)), expected, text);
  assert.equal(ipv6Bytes('fe80::1%lo'), null);
  assert.equal(canonicalAddress('fe80::0:1%lo'), 'fe80::1');
  assert.equal(canonicalAddress('010.0.0.1'), null);
});
