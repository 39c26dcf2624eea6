// Argument checks the layer must make exactly as Node makes them, so that hooked calls accept and refuse the
// same arguments as the originals.

/**
 * Node's validatePort: a number, or a non-blank string, holding an integer from 0 to 65535; 0 only where
 * `allowZero` (dgram's send refuses it and is left to Node's own error; listen and connect take it).
 */
export function validPort(port: unknown, allowZero = true): number | null {
  if (typeof port !== 'number' && typeof port !== 'string') return null;
  if (typeof port === 'string' && port.trim() === '') return null;
  const value = +port;
  if (value !== value >>> 0 || value > 0xffff) return null;
  if (value === 0 && !allowZero) return null;
  return value;
}
