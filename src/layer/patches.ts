// The one registry through which the layer replaces anything of Node's. Every patch is declared first (which
// captures the original, before any user code runs), then all of them are applied at once; apply() hands back
// the only way to undo them. A second apply, from this registry or from another copy of the layer loaded into
// the same process (a preload given twice, a bundled copy in a dependency), is refused: two layers would route
// every operation twice.

const kReplacement = Symbol.for('remocal.layer.replacement');

export interface PatchDefinition<T extends object, K extends keyof T> {
  target: T;
  key: K;
  /** Builds the replacement from the original, which the registry has already captured. */
  replace: (original: T[K]) => T[K];
}

interface CapturedPatch {
  target: object;
  key: PropertyKey;
  /** The target's own descriptor, or undefined when the property was inherited (restore deletes it). */
  ownDescriptor: PropertyDescriptor | undefined;
  original: unknown;
  replace: (original: never) => unknown;
}

export class PatchAlreadyAppliedError extends Error {
  readonly code = 'REMOCAL_LAYER_ALREADY_PATCHED';
}

export class PatchRegistry {
  readonly #patches: CapturedPatch[] = [];
  #applied = false;

  /** Declares a patch and captures the current value of target[key] as its original. Returns that original. */
  define<T extends object, K extends keyof T>(definition: PatchDefinition<T, K>): T[K] {
    if (this.#applied) throw new Error('remocal: patches must be defined before apply()');
    const { target, key } = definition;
    const original = target[key];
    this.#patches.push({
      target,
      key,
      ownDescriptor: Object.getOwnPropertyDescriptor(target, key),
      original,
      replace: definition.replace as (original: never) => unknown,
    });
    return original;
  }

  /** Installs every defined patch. Throws, and changes nothing, when something is patched already. */
  apply(): () => void {
    if (this.#applied) throw new PatchAlreadyAppliedError('remocal: this patch registry was applied already');
    for (const patch of this.#patches) {
      if (isReplacement(patch.original)) {
        throw new PatchAlreadyAppliedError(`remocal: ${describe(patch)} is patched already (is the layer loaded twice?)`);
      }
    }
    this.#applied = true;
    for (const patch of this.#patches) {
      const replacement = patch.replace(patch.original as never);
      if (typeof replacement === 'function') {
        Object.defineProperty(replacement, kReplacement, { value: true });
        copyFunctionIdentity(replacement, patch.original);
      }
      Object.defineProperty(patch.target, patch.key, {
        value: replacement,
        writable: patch.ownDescriptor?.writable ?? true,
        enumerable: patch.ownDescriptor?.enumerable ?? false,
        configurable: true,
      });
    }
    let restored = false;
    return () => {
      if (restored) return;
      restored = true;
      // Newest first, so that two patches of the same property unwind to the very first original.
      for (const patch of [...this.#patches].reverse()) {
        if (patch.ownDescriptor === undefined) {
          delete (patch.target as Record<PropertyKey, unknown>)[patch.key];
        } else {
          Object.defineProperty(patch.target, patch.key, patch.ownDescriptor);
        }
      }
    };
  }
}

export function isReplacement(value: unknown): boolean {
  return typeof value === 'function' && (value as unknown as Record<symbol, unknown>)[kReplacement] === true;
}

// Code that inspects a function (util.promisify reads dns.lookup's custom promisify symbol, some libraries log
// fn.name) must see what it saw before: same name, same length, same symbol-keyed properties.
function copyFunctionIdentity(replacement: object, original: unknown): void {
  if (typeof original !== 'function') return;
  for (const key of ['name', 'length'] as const) {
    const descriptor = Object.getOwnPropertyDescriptor(original, key);
    if (descriptor) Object.defineProperty(replacement, key, descriptor);
  }
  for (const symbol of Object.getOwnPropertySymbols(original)) {
    if (symbol === kReplacement) continue;
    const descriptor = Object.getOwnPropertyDescriptor(original, symbol);
    if (descriptor) Object.defineProperty(replacement, symbol, descriptor);
  }
}

function describe(patch: CapturedPatch): string {
  const owner = (patch.target as { constructor?: { name?: string } }).constructor?.name;
  return `${owner && owner !== 'Object' ? `${owner}.prototype` : 'module'}.${String(patch.key)}`;
}
