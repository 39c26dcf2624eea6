// Local mode's policies: YAML or JSON files in one directory, each holding RemocalPolicy and RemocalClusterPolicy
// objects in the CRDs' own shape (several per file, as `---` documents), so that a team can move its policies
// between a host and a cluster unchanged. The directory is read again every `reloadMs`; a change applies within that.
//
// A file that does not hold valid policies is an admin's mistake, and a policy that silently vanished would allow
// what it was written to forbid. So at start such a file stops the operator with the reasons; later, the file's
// previous policies stay in force until it is mended, and the log says why.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ConfigError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { LOCAL_NAMESPACE } from '../local-catalog.js';
import { parsePolicyObject } from './policy-object.js';
import type { StoredPolicy } from './select.js';
import type { PolicySource, PolicyStore } from './store.js';

const POLICY_FILE = /\.(ya?ml|json)$/;
/** A policy directory is a few files of a few rules; anything this large is a mistake. */
const MAX_FILE_BYTES = 1024 * 1024;

interface FileState {
  mtimeMs: number;
  size: number;
  policies: StoredPolicy[];
}

export class LocalPolicySource implements PolicySource {
  private readonly files = new Map<string, FileState>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly dir: string,
    private readonly reloadMs: number,
    private readonly log: Logger,
  ) {}

  async start(store: PolicyStore): Promise<void> {
    const problems = this.load();
    if (problems.length > 0) {
      throw new ConfigError(`The policies in ${this.dir} are not valid:\n  ${problems.join('\n  ')}`, {
        hint: 'Mend or move the file, then start the operator again; docs/policies.md shows the format.',
      });
    }
    store.replace(this.all());
    // Each problem is logged once, not at every reload while it lasts.
    let reported = new Set<string>();
    this.timer = setInterval(() => {
      const problems = new Set(this.load());
      for (const problem of problems) {
        if (!reported.has(problem)) this.log.error({ dir: this.dir, problem }, 'a policy file is not valid; its previous policies stay in force');
      }
      reported = problems;
      store.replace(this.all());
    }, this.reloadMs);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  private all(): StoredPolicy[] {
    return [...this.files.values()].flatMap((file) => file.policies);
  }

  /** Reads the files that changed; returns what is wrong with those that cannot be read as policies. */
  private load(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.dir).filter((name) => POLICY_FILE.test(name)).sort();
    } catch (error) {
      return [`cannot read the directory: ${(error as Error).message}`];
    }
    const problems: string[] = [];
    const seen = new Set<string>();
    for (const name of names) {
      const path = join(this.dir, name);
      seen.add(path);
      let stats;
      try {
        stats = statSync(path);
      } catch {
        continue;
      }
      const known = this.files.get(path);
      if (known !== undefined && known.mtimeMs === stats.mtimeMs && known.size === stats.size) continue;
      const read = readPolicyFile(path, stats.size);
      if (typeof read === 'string') {
        problems.push(read);
        continue;
      }
      this.files.set(path, { mtimeMs: stats.mtimeMs, size: stats.size, policies: read });
      this.log.info({ file: path, policies: read.map((policy) => policy.name) }, 'policies loaded');
    }
    for (const path of this.files.keys()) {
      if (!seen.has(path)) {
        this.files.delete(path);
        this.log.info({ file: path }, 'policy file removed');
      }
    }
    const definedIn = new Map<string, string>();
    for (const [path, file] of this.files) {
      for (const policy of file.policies) {
        const key = `${policy.kind} ${policy.namespace ?? ''}/${policy.name}`;
        const other = definedIn.get(key);
        if (other !== undefined && other !== path) problems.push(`${path}: ${key} is also defined in ${other}`);
        definedIn.set(key, path);
      }
    }
    return problems;
  }
}

function readPolicyFile(path: string, size: number): StoredPolicy[] | string {
  if (size > MAX_FILE_BYTES) return `${path}: larger than ${MAX_FILE_BYTES} bytes`;
  let documents;
  try {
    documents = parseAllDocuments(readFileSync(path, 'utf8'));
  } catch (error) {
    return `${path}: ${(error as Error).message}`;
  }
  const policies: StoredPolicy[] = [];
  const list = Array.isArray(documents) ? documents : [documents];
  for (const [index, document] of list.entries()) {
    const where = list.length > 1 ? `${path} (document ${index + 1})` : path;
    if (!('errors' in document)) return `${where}: not a YAML document`;
    if (document.errors.length > 0) return `${where}: ${document.errors[0]!.message}`;
    const raw: unknown = document.toJS();
    if (raw === null || raw === undefined) continue;
    const parsed = parsePolicyObject(raw, LOCAL_NAMESPACE);
    if (typeof parsed === 'string') return `${where}: ${parsed}`;
    policies.push(parsed);
  }
  return policies;
}
