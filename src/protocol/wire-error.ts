// A RemocalError across a process boundary (the intproxy's `fatal` report to the CLI): the catalog's code,
// message and hint go over; the other side rebuilds the catalog's class from the code.

import { errorCatalog, InternalError, isRemocalError, type RemocalError } from '../core/errors.js';
import type { SerializedError } from './contracts.js';

export function serializeError(error: unknown): SerializedError {
  if (isRemocalError(error)) return { code: error.code, message: error.message, hint: error.hint };
  const message = error instanceof Error ? error.message : String(error);
  return { code: InternalError.code, message };
}

export function deserializeError(wire: SerializedError): RemocalError {
  const Class = errorCatalog.find((candidate) => candidate.code === wire.code) ?? InternalError;
  return new Class(wire.message, wire.hint === undefined ? {} : { hint: wire.hint });
}
