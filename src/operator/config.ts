// The operator's own configuration: a YAML or JSON file given to `remocal operator serve --config FILE`.
// Every limit the operator enforces is here, with its default, so that an admin reads one file to know them.

import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../core/errors.js';

const seconds = (fallback: number) => z.number().positive().max(30 * 24 * 3600).default(fallback);

const user = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/, 'a user name is letters, digits and . _ @ -'),
  /** SHA-256 of the token, hex: the file then holds nothing that lets anyone in. */
  token_sha256: z.string().regex(/^[0-9a-f]{64}$/, 'token_sha256 is 64 lower-case hex digits (`printf %s TOKEN | sha256sum`)').optional(),
  token: z.string().min(16, 'a token has at least 16 characters').optional(),
  /** May list and kill everyone's sessions. */
  admin: z.boolean().default(false),
  /** Which targets this user may open sessions on; overrides the top-level `targets` for them. */
  targets: z.array(z.string().min(1)).optional(),
}).refine((value) => (value.token === undefined) !== (value.token_sha256 === undefined), 'give each user exactly one of token and token_sha256');

const kubernetes = z
  .strictObject({
    /** A kubeconfig file, for an operator run outside the cluster; inside it, its ServiceAccount is used. */
    kubeconfig: z.string().min(1).optional(),
    /** How often the front proxy's settings (kube-system/extension-apiserver-authentication) are read again. */
    authentication_reload: seconds(60),
    agent: z
      .strictObject({
        /** The agent image; the one of this remocal's version unless given. */
        image: z.string().min(1).optional(),
        /** An ephemeral container in the target pod; false: a Job's pod on the target's node. */
        ephemeral: z.boolean().default(true),
        privileged: z.boolean().default(false),
        /** An agent whose operator never opens its control link exits after this long. */
        ttl: seconds(60),
        log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
      })
      .prefault({}),
  })
  .prefault({});

export const operatorConfigSchema = z.strictObject({
  /**
   * `local`: targets on this host (pid/, container/, netns/), users from `users`, over its own TLS.
   * `kubernetes`: the cluster's workloads, served as the aggregated API behind the API server, which
   * authenticates the users (front-proxy headers) and checks their RBAC; the operator checks the rest with
   * SubjectAccessReviews.
   */
  mode: z.enum(['local', 'kubernetes']).default('local'),
  kubernetes,
  listen: z.strictObject({ host: z.string().min(1).default('0.0.0.0'), port: z.int().min(0).max(65_535).default(7443) }).prefault({}),
  /** Where the operator keeps its certificates and its agents' sockets (mode 0700). */
  state_dir: z.string().min(1).default('/var/lib/remocal-operator'),
  tls: z
    .strictObject({
      /** A serving certificate and key of your own; without them the operator makes a CA and a certificate in state_dir. */
      cert_file: z.string().min(1).optional(),
      key_file: z.string().min(1).optional(),
      /** Extra names (DNS or IP) in the generated certificate, beside localhost, 127.0.0.1 and the host name. */
      names: z.array(z.string().min(1)).default([]),
    })
    .prefault({}),
  /** Local mode's users; Kubernetes mode takes its users from the API server and ignores none here. */
  users: z.array(user).default([]),
  /**
   * The targets users may open sessions on, as target strings where `*` stands for any run of characters
   * (`container/orders-*`, `pid/*`). A session on a target reads its environment and files: list only what the
   * team works on.
   */
  targets: z.array(z.string().min(1)).min(1).default(['pid/*', 'container/*', 'netns/*']),
  sessions: z
    .strictObject({
      /** A session's link must be up this long after it connected. */
      setup_timeout: seconds(15),
      /** A session with no request and no routed traffic for this long is closed. */
      idle_timeout: seconds(3600),
      /** No session lives longer. */
      max_duration: seconds(12 * 3600),
      /** Closed sessions kept for `remocal session list`. */
      keep_closed: z.int().min(0).max(10_000).default(200),
    })
    .prefault({}),
  policies: z
    .strictObject({
      /**
       * Local mode: a directory of policy files (YAML or JSON), RemocalPolicy and RemocalClusterPolicy objects in the
       * CRDs' shape. Kubernetes mode reads the custom resources instead. Unset: no policies.
       */
      dir: z.string().min(1).optional(),
      /** How often the directory is read again: a changed policy applies within this. */
      reload: seconds(2),
    })
    .prefault({}),
  agents: z
    .strictObject({
      /** An agent with no session left is ended after this long (a session that comes back soon reuses it). */
      grace: seconds(30),
      /** How long an agent may take to start. */
      startup_timeout: seconds(20),
    })
    .prefault({}),
  log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
}).superRefine((config, context) => {
  if (config.mode === 'local' && config.users.length === 0) {
    context.addIssue({ code: 'custom', path: ['users'], message: 'list at least one user: nobody could use the operator otherwise' });
  }
  if (config.mode === 'kubernetes' && config.users.length > 0) {
    context.addIssue({ code: 'custom', path: ['users'], message: 'in Kubernetes mode the API server says who the users are: remove `users`, and grant access with RBAC' });
  }
});

export type OperatorConfig = z.output<typeof operatorConfigSchema>;

export function loadOperatorConfig(file: string): OperatorConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`Cannot read the operator config ${file}: ${(error as Error).message}.`, { hint: 'Pass the file with `remocal operator serve --config FILE`; docs/operator.md has an example.' });
  }
  let raw: unknown;
  try {
    raw = extname(file) === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new ConfigError(`The operator config ${file} is not valid ${extname(file) === '.json' ? 'JSON' : 'YAML'}: ${(error as Error).message}`, { hint: 'docs/operator.md has an example.' });
  }
  const parsed = operatorConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(top)'}: ${issue.message}`);
    throw new ConfigError(`The operator config ${file} is not valid:\n  ${problems.join('\n  ')}`, { hint: 'docs/operator.md lists every key with its default.' });
  }
  return parsed.data;
}
