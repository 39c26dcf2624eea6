// The error catalog and its documentation stay in step, and errors behave the same across package copies.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { errorCatalog, isRemocalError, RemocalError, TargetGoneError, TargetNotFoundError } from '../../src/core/errors.js';
import { deserializeError, serializeError } from '../../src/protocol/wire-error.js';

const docs = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

describe('error catalog', () => {
  it('documents every code with its category, and nothing else', () => {
    const documented = [...docs.matchAll(/^\| `(REMOCAL_[A-Z_]+)` \| (\w+) \|/gm)].map((match) => `${match[1]} ${match[2]}`);
    const declared = errorCatalog.map((Class) => `${Class.code} ${Class.category}`);
    assert.deepEqual([...documented].sort(), [...declared].sort());
  });

  it('has unique codes', () => {
    const codes = errorCatalog.map((Class) => Class.code);
    assert.equal(new Set(codes).size, codes.length);
  });

  it('gives every error a name, code, category and hint where one is declared', () => {
    const error = new TargetNotFoundError('There is no process 1.', { hint: 'look again' });
    assert.equal(error.name, 'TargetNotFoundError');
    assert.equal(error.code, 'REMOCAL_TARGET_NOT_FOUND');
    assert.equal(error.category, 'user');
    assert.equal(error.hint, 'look again');
    assert.ok(new TargetGoneError('gone').hint, 'a default hint');
  });

  it('recognises an error from another copy of the package by its code', () => {
    const foreign = Object.defineProperty({ code: 'REMOCAL_TARGET_GONE', message: 'gone' }, Symbol.for('remocal.error'), { value: true });
    assert.ok(isRemocalError(foreign));
    assert.ok(foreign instanceof RemocalError);
    assert.ok(foreign instanceof TargetGoneError);
    assert.ok(!(foreign instanceof TargetNotFoundError));
    assert.ok(!(new Error('plain') instanceof RemocalError));
  });

  it('survives the trip between intproxy and CLI', () => {
    const back = deserializeError(serializeError(new TargetGoneError('The target pid/7 is gone.')));
    assert.ok(back instanceof TargetGoneError);
    assert.equal(back.message, 'The target pid/7 is gone.');
    assert.equal(back.hint, new TargetGoneError('x').hint);
  });
});
