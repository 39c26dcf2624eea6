// resolv.conf as glibc reads it. Each expectation below was checked against glibc 2.36 (Debian 12) by watching
// which names and servers getaddrinfo asked; glibc-compliance.test.ts replays the important ones end to end.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseInetAton, parseResolvConf } from '../../../src/agent/dns/resolv-conf.js';

test('an empty file gives glibc defaults: 127.0.0.1, ndots 1, timeout 5, attempts 2', () => {
  assert.deepEqual(parseResolvConf(''), {
    nameservers: ['127.0.0.1'],
    search: [],
    ndots: 1,
    timeout: 5,
    timeoutConfigured: false,
    attempts: 2,
    rotate: false,
    noTldQuery: false,
    noAaaa: false,
  });
});

test('a kubernetes pod file', () => {
  const conf = parseResolvConf(
    'search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n',
  );
  assert.deepEqual(conf.nameservers, ['10.96.0.10']);
  assert.deepEqual(conf.search, ['default.svc.cluster.local', 'svc.cluster.local', 'cluster.local']);
  assert.equal(conf.ndots, 5);
});

test('nameservers: IPv4 in inet_aton forms, IPv6 with its zone dropped, the rest of the line ignored, bad ones skipped', () => {
  const conf = parseResolvConf(
    [
      'nameserver 10.1',
      'nameserver fd00::53 # comment after the address',
      'nameserver fe80::1%eth0',
      'nameserver\t192.0.2.1',
      'nameserver not-an-address',
      'nameserver',
      ' nameserver 192.0.2.2',
      'NAMESERVER 192.0.2.3',
      'nameserver 192.0.2.4',
    ].join('\n'),
  );
  assert.deepEqual(conf.nameservers, ['10.0.0.1', 'fd00::53', 'fe80::1', '192.0.2.1', '192.0.2.4']);
});

test('only lines that start with # or ; are comments; inside a search line they are domains', () => {
  const conf = parseResolvConf('#nameserver 192.0.2.1\n;nameserver 192.0.2.2\nnameserver 192.0.2.3\nsearch a # b ; c\n');
  assert.deepEqual(conf.nameservers, ['192.0.2.3']);
  assert.deepEqual(conf.search, ['a', '#', 'b', ';', 'c']);
});

test('search and domain replace each other, the last one wins; domain keeps its first word', () => {
  assert.deepEqual(parseResolvConf('domain d1 d2\nsearch s1 s2\n').search, ['s1', 's2']);
  assert.deepEqual(parseResolvConf('search s1 s2\ndomain d1 d2\n').search, ['d1']);
  assert.deepEqual(parseResolvConf('search s1 s2\nsearch s3\n').search, ['s3']);
  // A keyword without a value changes nothing.
  assert.deepEqual(parseResolvConf('search s1\nsearch\nsearch   \n').search, ['s1']);
});

test('search domains are kept as written: case, duplicates, dots, the root', () => {
  assert.deepEqual(parseResolvConf('search S1 s1 s2. .\n').search, ['S1', 's1', 's2.', '.']);
});

test('options: several lines, later values win, limits of glibc', () => {
  const conf = parseResolvConf('options ndots:3 timeout:2\noptions attempts:9 ndots:20 timeout:99\n');
  assert.equal(conf.ndots, 15);
  assert.equal(conf.timeout, 30);
  assert.equal(conf.timeoutConfigured, true);
  assert.equal(conf.attempts, 5);
  assert.equal(parseResolvConf('options ndots:0').ndots, 0);
  assert.equal(parseResolvConf('options ndots:x').ndots, 0);
});

test('options are matched by prefix, as glibc does', () => {
  const conf = parseResolvConf('options rotate-please no_tld_query no-aaaa edns0 trust-ad\n');
  assert.equal(conf.rotate, true);
  assert.equal(conf.noTldQuery, true);
  assert.equal(conf.noAaaa, true);
  assert.equal(parseResolvConf('options no-tld-query').noTldQuery, true);
});

test('LOCALDOMAIN replaces the search list, RES_OPTIONS comes after the file', () => {
  const conf = parseResolvConf('search s1\noptions ndots:5 attempts:1\n', { localDomain: 'env1 env2', resOptions: 'ndots:2' });
  assert.deepEqual(conf.search, ['env1', 'env2']);
  assert.equal(conf.ndots, 2);
  assert.equal(conf.attempts, 1);
});

test('without search or domain, the domain part of the hostname is searched', () => {
  assert.deepEqual(parseResolvConf('', { hostname: 'pod-1.ns.example' }).search, ['ns.example']);
  assert.deepEqual(parseResolvConf('', { hostname: 'pod-1' }).search, []);
  assert.deepEqual(parseResolvConf('search s1', { hostname: 'pod-1.ns.example' }).search, ['s1']);
});

test('inet_aton forms that getaddrinfo and resolv.conf accept', () => {
  const cases: [string, string | null][] = [
    ['127.1', '127.0.0.1'],
    ['0x7f.1', '127.0.0.1'],
    ['010.0.0.1', '8.0.0.1'],
    ['4294967295', '255.255.255.255'],
    ['1.16777215', '1.255.255.255'],
    ['0', '0.0.0.0'],
    ['4294967296', null],
    ['1.2.3.256', null],
    ['08.1.1.1', null],
    ['1.2.3.4.5', null],
    ['1..2', null],
    ['0x', null],
    ['1.2.3.4 ', null],
    ['', null],
  ];
  for (const [text, expected] of cases) assert.equal(parseInetAton(text), expected, text);
});
