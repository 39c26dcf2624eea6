// Every remocal option, declared once. Keys follow mirrord's config so that a team's mirrord.json keeps
// working; where remocal differs from mirrord (a default, a key of its own) the description says so.
//
// Each option's env var is derived from its key path (feature.fs.mode → REMOCAL_FEATURE_FS_MODE) unless a
// shorter one is declared. Precedence, for every option: CLI flag > env var > config file > default.
//
// To add an option: add one `option({...})` where it belongs. Types, validation, env var, JSON Schema and
// docs/config.md follow from it (run `node --import tsx src/config/generate.ts` to refresh the last two).

import { z } from 'zod';
import { editorOnly, group, mirrordOnly, option, type FlagsOf, type ResolvedOf } from './declare.js';
import {
  LOG_LEVELS,
  addressFilter,
  kubernetesNamespace,
  logLevel,
  nameList,
  port,
  portPair,
  regex,
  regexList,
  targetPath,
  targetPathString,
} from './value-types.js';
import { COPY_COMMANDS } from '../protocol/copy-target.js';
import { MAX_SPLIT_QUEUES, messageFilterProblem, QUEUE_TYPES, queueIdProblem } from '../protocol/split-queues.js';
import { actionList } from './actions.js';

const INCOMING_MODES = ['mirror', 'steal', 'off'] as const;
const FS_MODES = ['local', 'localwithoverrides', 'read', 'write'] as const;

const stringMap = () => z.record(z.string(), z.string());

const httpMethod = z.string().superRefine((method, context) => {
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(method)) {
    context.addIssue({ code: 'custom', message: `${JSON.stringify(method)} is not an HTTP method name (GET, POST, …).`, params: { value: method } });
  }
});

/** One part of a composite HTTP filter: a header regex, a path regex or a method. */
const innerHttpFilter = z.union([z.strictObject({ header: regex() }), z.strictObject({ path: regex() }), z.strictObject({ method: httpMethod })]);

const toleration = z.strictObject({
  key: z.string().optional(),
  operator: z.enum(['Exists', 'Equal']).optional(),
  value: z.string().optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
  tolerationSeconds: z.int().optional(),
});

const resourceQuantities = z.record(z.string(), z.union([z.string(), z.number()]));

const target = group({
  description:
    'What the process runs as if it ran inside. A string is the short form of `{ "path": … }`. ' +
    'Local targets: `pid/<pid>`, `container/<name-or-id>` (docker or podman), `netns/<name>`. Kubernetes targets: ' +
    '`pod/<name>`, `deployment/<name>`, `statefulset/<name>`, `job/<name>`, `cronjob/<name>`, `rollout/<name>`, ' +
    '`service/<name>`, `replicaset/<name>`, each with an optional `/container/<container>`; or `targetless`.',
  shorthand: {
    schema: targetPathString(),
    expand: (path) => ({ path }),
    description: '`"target": "pod/web"` is `"target": { "path": "pod/web" }`.',
  },
  children: {
    path: option({
      schema: targetPath(),
      env: 'REMOCAL_TARGET',
      flag: { name: 'target', short: 't', argument: 'TARGET' },
      description:
        'The target, as a string (`deployment/api/container/app`) or in mirrord\'s object form ' +
        '(`{ "deployment": "api", "container": "app" }`), which resolves to the string form.',
      docsDefault: 'not set: the session is targetless',
    }),
    namespace: option({
      schema: kubernetesNamespace(),
      flag: { name: 'namespace', short: 'n', argument: 'NAMESPACE' },
      description: 'Kubernetes namespace of the target. For a targetless session, the namespace its network and DNS come from.',
      docsDefault: "the kubeconfig context's namespace",
    }),
  },
});

const agent = group({
  description:
    'The agent remocal starts next to the target. On Kubernetes it runs as a pod (or an ephemeral container) whose ' +
    'Kubernetes settings are below; on the local platform only `log_level` and `startup_timeout` apply.',
  check: (value, context) => {
    if (value.ephemeral && value.namespace !== undefined) {
      context.warn('namespace', 'is ignored when the agent runs as an ephemeral container: it lives in the target pod\'s namespace.');
    }
  },
  children: {
    log_level: option({
      schema: logLevel(),
      default: 'info',
      description: `Log level of the agent: one of ${LOG_LEVELS.join(', ')}. mirrord's RUST_LOG directives ("mirrord=debug,warn") are accepted and resolve to the most verbose level they name.`,
    }),
    startup_timeout: option({
      schema: z.int().min(1),
      default: 60,
      description: 'Seconds to wait for the agent to start and answer. Raise it when pulling the agent image or scheduling its pod is slow.',
    }),
    ttl: option({
      schema: z.int().min(1),
      default: 30,
      description:
        'Seconds a Kubernetes agent waits for its client before it exits on its own, so that an agent whose CLI never ' +
        'reached it (or died before) does not linger. Once connected, the agent ends with its session.',
    }),
    image: option({
      schema: z.string().min(1),
      description: 'Agent container image, to use a mirror registry or a custom build.',
      docsDefault: "remocal's agent image of the same version as the CLI",
    }),
    namespace: option({
      schema: kubernetesNamespace(),
      description: "Namespace of the agent's pod (not for ephemeral agents, which live in the target's pod).",
      docsDefault: "the target's namespace",
    }),
    ephemeral: option({
      schema: z.boolean(),
      // Unlike mirrord: an ephemeral container needs one permission (patch pods/ephemeralcontainers) and no hostPID
      // pod, which Pod Security admission refuses in most namespaces.
      default: true,
      description:
        "Run the agent as an ephemeral container in the target's pod. `false` runs it in a pod of its own on the target's " +
        "node (hostPID, entering the target container's network namespace), for clusters without ephemeral containers.",
    }),
    privileged: option({
      schema: z.boolean(),
      default: false,
      description: 'Run the agent container privileged, for clusters where its capabilities alone are not enough (Bottlerocket, some hardened nodes).',
    }),
    labels: option({ schema: stringMap(), default: {}, description: "Extra labels on the agent's pod." }),
    annotations: option({ schema: stringMap(), default: {}, description: "Extra annotations on the agent's pod." }),
    tolerations: option({
      schema: z.array(toleration),
      default: [{ operator: 'Exists' }],
      description: "Tolerations of the agent's pod. The default tolerates every taint, so that the agent can run on the target's node whatever its taints; `[]` tolerates none.",
    }),
    node_selector: option({ schema: stringMap(), default: {}, description: "Node selector of the agent's pod (targetless sessions only: a targeted agent runs on the target's node)." }),
    resources: option({
      schema: z.strictObject({ requests: resourceQuantities.optional(), limits: resourceQuantities.optional() }),
      // The agent is a Node.js process: its heap and the runtime alone need tens of megabytes.
      default: { requests: { cpu: '10m', memory: '64Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
      description: "Resource requests and limits of the agent's container.",
    }),
    service_account: option({ schema: z.string().min(1), description: "Service account of the agent's pod.", docsDefault: "the namespace's default service account" }),
    json_log: mirrordOnly('Logs of the agent in JSON.'),
    image_pull_policy: mirrordOnly('Pull policy of the agent image.'),
    image_pull_secrets: mirrordOnly('Pull secrets of the agent image.'),
    communication_timeout: mirrordOnly('How long the agent waits without connections.'),
    network_interface: mirrordOnly('Interface the agent mirrors from.'),
    flush_connections: mirrordOnly('Flush existing connections when stealing starts.'),
    disabled_capabilities: mirrordOnly('Linux capabilities the agent does without.'),
    check_out_of_pods: mirrordOnly('Check that the node has room for the agent pod.'),
    clean_iptables_on_start: mirrordOnly("Remove a previous agent's iptables rules (remocal's agent always does)."),
    disable_mesh_sidecar_injection: mirrordOnly('Keep service meshes from injecting sidecars into the agent pod.'),
    dns: mirrordOnly("Timeouts and attempts of the agent's DNS resolution."),
    exclude_from_mesh: mirrordOnly("Exclude the agent's port from the service mesh."),
    inject_headers: mirrordOnly('Mark HTTP responses that went through the agent.'),
    max_body_buffer_size: mirrordOnly('Body buffer size for HTTP body filters.'),
    max_body_buffer_timeout: mirrordOnly('Body wait time for HTTP body filters.'),
    metrics: mirrordOnly('Prometheus metrics of the agent.'),
    nftables: mirrordOnly('iptables backend of the agent.'),
    priority_class: mirrordOnly('Priority class of the agent pod.'),
    security_context: mirrordOnly('Security context of the agent pod.'),
  },
});

const env = group({
  description:
    "The target's environment variables, given to the local process. `true` or `false` is the short form of " +
    '`{ "enabled": … }`. Which variables come over is set by `include` or `exclude`; `override`, `env_file`, ' +
    '`mapping` and `unset` then change them locally.',
  shorthand: {
    schema: z.boolean(),
    expand: (enabled) => ({ enabled }),
    description: '`"env": false` keeps the local environment as it is.',
  },
  children: {
    enabled: option({
      schema: z.boolean(),
      default: true,
      description: "Give the process the target's environment. (remocal's key; in mirrord, `\"env\": false`, which remocal accepts too.)",
    }),
    include: option({
      schema: nameList(),
      description: 'Only these remote variables come over. Names may use `*` (any characters) and `?` (one character). An array, or one string of `;`-separated names.',
      docsDefault: 'not set: every remote variable except those in `exclude`',
    }),
    exclude: option({
      schema: nameList(),
      description: "Remote variables that do not come over (the local value stays). Same syntax as `include`. Variables that describe the local machine (PATH, HOME…) never come over unless included.",
      docsDefault: 'not set',
    }),
    override: option({ schema: stringMap(), description: 'Variables set to these values locally, whatever the target has. They win over `env_file` too.', docsDefault: 'not set' }),
    unset: option({
      schema: nameList(),
      description: 'Variables removed from the process environment (case-insensitive), for local settings that would make the app behave locally, such as AWS_PROFILE.',
      docsDefault: 'not set',
    }),
    env_file: option({ schema: z.string().min(1), description: 'A dotenv file whose variables override the remote ones (relative to the working directory).', docsDefault: 'not set' }),
    mapping: option({
      schema: z.record(regex(), z.string()),
      description: 'Regex on variable names → value: every variable whose name matches gets that value.',
      docsDefault: 'not set',
    }),
    load_from_process: mirrordOnly('Load the environment after the process starts (an IntelliJ-on-WSL workaround).'),
  },
});

const fs = group({
  description:
    'Which file operations go to the target (its files as its processes see them, under /proc/<pid>/root). A mode ' +
    'string is the short form of `{ "mode": … }`; `true` means `"read"` and `false` means `"local"`. The pattern ' +
    'lists are case-insensitive regexes on the absolute path (JavaScript syntax); the first rule that applies ' +
    'wins, in this order: `not_found`, `read_write`, `read_only`, `local`, then the default local set, then the ' +
    'mode (mode `local` ignores the lists). The default local set keeps this machine\'s own files local whatever the mode: the cwd, the main ' +
    "script's directory and its project (nearest package.json), any `node_modules`, Node's install prefix, " +
    'remocal itself, the home directory, temp dirs (`/tmp`, `/var/tmp`, `os.tmpdir()`), `/proc`, `/sys`, `/dev`, ' +
    '`/usr`, `/lib*`, `/bin`, `/sbin`, `/nix`, `/snap`, `/etc/ld.so.*` and `*.so` files. The lists override it ' +
    '(`read_only: ["^/tmp/shared/"]` reads that directory from the target). URL objects (`new URL("file:…")`) ' +
    'always stay local: Node\'s module loader reads the app\'s code through them.',
  shorthand: {
    schema: z.union([z.boolean(), z.enum(FS_MODES)]),
    expand: (value) => ({ mode: value === true ? 'read' : value === false ? 'local' : value }),
    description: '`"fs": "write"`, `"fs": true` (read), `"fs": false` (local).',
  },
  children: {
    mode: option({
      schema: z.enum(FS_MODES),
      default: 'read',
      flag: { name: 'fs-mode', argument: 'MODE' },
      description:
        '`read`: files are read from the target, writes stay local; `write`: reads and writes go to the target; ' +
        '`local`: nothing goes to the target; `localwithoverrides`: local, except the paths listed below.',
    }),
    read_write: option({ schema: regexList(), description: 'Paths read and written on the target.', docsDefault: 'not set' }),
    read_only: option({ schema: regexList(), description: 'Paths read from the target; opened for writing, they are opened locally.', docsDefault: 'not set' }),
    local: option({ schema: regexList(), description: 'Paths always opened locally.', docsDefault: 'not set' }),
    not_found: option({ schema: regexList(), description: 'Paths that do not exist for the process (ENOENT).', docsDefault: 'not set' }),
    mapping: mirrordOnly('Regex rewriting of paths before they are looked up.'),
    readonly_file_buffer: mirrordOnly('Buffer size of remote read-only files.'),
  },
});

const httpFilter = group({
  description:
    'In steal mode, steal only the HTTP requests that match, and let the others reach the target as usual. ' +
    'Give one of `header_filter`, `path_filter`, `method_filter`, or combine several with `all_of` / `any_of`. ' +
    'Regexes are case-insensitive, JavaScript syntax.',
  check: (value, context) => {
    const given = (['header_filter', 'path_filter', 'method_filter', 'all_of', 'any_of'] as const).filter((key) => value[key] !== undefined);
    if (given.length > 1) {
      context.error('', `give one kind of HTTP filter, not ${given.join(' and ')}: combine several with "all_of" or "any_of".`, {
        allowed: ['header_filter', 'path_filter', 'method_filter', 'all_of', 'any_of'],
      });
    }
  },
  children: {
    header_filter: option({ schema: regex(), description: 'Regex matched against each header as `Name: value`.', docsDefault: 'not set' }),
    path_filter: option({ schema: regex(), description: 'Regex matched against the request path, with and without its query string.', docsDefault: 'not set' }),
    method_filter: option({ schema: httpMethod, description: 'HTTP method (case-insensitive).', docsDefault: 'not set' }),
    all_of: option({
      schema: z.array(innerHttpFilter).min(1),
      description: 'Requests matching every one of these filters: `[{ "header": "…" }, { "path": "…" }, { "method": "…" }]`.',
      docsDefault: 'not set',
    }),
    any_of: option({ schema: z.array(innerHttpFilter).min(1), description: 'Requests matching at least one of these filters (same form as `all_of`).', docsDefault: 'not set' }),
    ports: option({ schema: z.array(port), description: 'Ports on which the filter applies; other ports are stolen whole.', docsDefault: 'not set: every port' }),
    body_filter: mirrordOnly('Filter on the JSON body of requests.'),
  },
});

const incoming = group({
  description:
    "Traffic that reaches the target's ports while the process listens on them. A mode string is the short form " +
    'of `{ "mode": … }`; `true` means the default mode and `false` means `"off"`.',
  shorthand: {
    schema: z.union([z.boolean(), z.enum(INCOMING_MODES)]),
    expand: (value) => (value === true ? {} : { mode: value === false ? 'off' : value }),
    description: '`"incoming": "steal"`, `"incoming": false` (off).',
  },
  check: (value, context) => {
    if (value.ports !== undefined && value.ignore_ports.length > 0) {
      context.error('', 'give either "ports" (only these are mirrored or stolen) or "ignore_ports" (all but these), not both.', { allowed: ['ports', 'ignore_ports'] });
    }
    const filter = value.http_filter;
    const filtered = filter.header_filter ?? filter.path_filter ?? filter.method_filter ?? filter.all_of ?? filter.any_of;
    if (filtered !== undefined && value.mode !== 'steal') context.warn('http_filter', `applies only in steal mode; with mode "${value.mode}" it is ignored.`);
  },
  children: {
    mode: option({
      schema: z.enum(INCOMING_MODES),
      default: 'mirror',
      flag: { name: 'steal', sets: 'steal', description: 'Steal incoming traffic instead of mirroring it (feature.network.incoming.mode = "steal").' },
      description:
        '`mirror`: the process gets a copy of the connections to the target\'s port, and the target answers them. ' +
        '`steal`: the connections (or, with `http_filter`, the matching HTTP requests) go to the process instead. `off`: nothing comes in.',
    }),
    http_filter: httpFilter,
    port_mapping: option({ schema: z.array(portPair), default: [], description: 'Pairs `[local, remote]`: the process listens on `local`, traffic comes from the target\'s `remote`.' }),
    ignore_localhost: option({ schema: z.boolean(), default: false, description: 'Do not mirror or steal for sockets the process binds to loopback.' }),
    ignore_ports: option({ schema: z.array(port), default: [], description: 'Ports the process listens on that stay purely local.' }),
    ports: option({ schema: z.array(port), description: 'Only these ports are mirrored or stolen; the others stay local.', docsDefault: 'not set: every port' }),
    listen_ports: option({
      schema: z.array(portPair),
      default: [],
      description: 'Pairs `[remote, local]`: when the process listens on `remote`, it really listens on `local` (for ports it could not bind, such as 80).',
    }),
    on_concurrent_steal: option({
      schema: z.enum(['abort', 'continue', 'override']),
      default: 'abort',
      description:
        'When another session already steals the port (whole, or with filters when this session steals it whole): `abort` ends this session ' +
        'with an error naming the holder, `continue` goes on without the port, `override` takes the port and tells the sessions it was taken from ' +
        '(with the operator only: without it every session has an agent of its own, and override ends the session like abort). ' +
        'A filtered steal of a port stolen whole, and a filter the same as another session\'s on the port, are refused: abort and override end the session, continue goes on.',
    }),
    https_delivery: mirrordOnly('How stolen TLS traffic is delivered locally (deprecated in mirrord).'),
    tls_delivery: mirrordOnly('How stolen TLS traffic is delivered locally.'),
  },
});

const outgoing = group({
  description:
    'Connections the process opens. `true` or `"remote"` means the defaults (from the target); `false` or `"local"` ' +
    'means `{ "tcp": false, "udp": false }` (all local).',
  shorthand: {
    schema: z.union([z.boolean(), z.enum(['remote', 'local'])]),
    expand: (value) => (value === true || value === 'remote' ? {} : { tcp: false, udp: false }),
    description: '`"outgoing": false` keeps every connection local.',
  },
  children: {
    tcp: option({ schema: z.boolean(), default: true, description: 'Open TCP connections from the target.' }),
    udp: option({ schema: z.boolean(), default: true, description: 'Send UDP datagrams from the target.' }),
    ignore_localhost: option({
      schema: z.boolean(),
      default: true,
      description:
        'Connections to loopback addresses (127.0.0.0/8, ::1, localhost) stay local. **Differs from mirrord**, whose default ' +
        "is `false` (loopback means the target's loopback): with remocal, a local database or debugger on localhost keeps " +
        'working. Set `false` to reach services on the target\'s loopback, as mirrord does.',
    }),
    filter: option({
      schema: addressFilter('outgoing'),
      description:
        '`{ "local": [patterns] }`: these go local, the rest from the target; or `{ "remote": [patterns] }`: these go ' +
        'from the target, the rest local. Patterns: `[tcp://|udp://]host-or-ip[/prefix][:port]`, e.g. `"10.0.0.0/8"`, `"db.internal:5432"`, `":53"`.',
      docsDefault: 'not set: everything from the target',
    }),
    unix_streams: option({
      schema: regexList(),
      notYetSupported: true,
      description: 'Regexes of unix socket paths to connect to on the target.',
      docsDefault: 'not set',
    }),
  },
});

const dns = group({
  description: "Name resolution. `true` or `false` is the short form of `{ \"enabled\": … }`.",
  shorthand: { schema: z.boolean(), expand: (enabled) => ({ enabled }), description: '`"dns": false` resolves every name locally.' },
  check: (value, context) => {
    if (!value.enabled && value.filter !== undefined) context.warn('filter', 'is ignored: remote DNS is disabled.');
  },
  children: {
    enabled: option({ schema: z.boolean(), default: true, description: "Resolve names with the target's resolver (its resolv.conf, search domains, hosts file)." }),
    filter: option({
      schema: addressFilter('dns'),
      description: 'Like the outgoing filter, for name lookups: `{ "local": [...] }` or `{ "remote": [...] }` of `host-or-ip[/prefix][:port]` patterns.',
      docsDefault: 'not set: every name resolved by the target',
    }),
  },
});

const network = group({
  description: '`true` or `false` turns all of incoming, outgoing and DNS on (their defaults) or off.',
  shorthand: {
    schema: z.boolean(),
    expand: (enabled) => (enabled ? {} : { incoming: false, outgoing: false, dns: false }),
    description: '`"network": false` keeps all networking local.',
  },
  check: (value, context) => {
    if (value.outgoing.filter?.remote !== undefined && !value.dns.enabled) {
      context.warn('dns', 'is disabled, so the host names of the remote outgoing filter are resolved locally; enable it to resolve them on the target.');
    }
  },
  children: {
    incoming,
    outgoing,
    dns,
    ipv6: mirrordOnly('IPv6 support switch.'),
  },
});

const copyTarget = group({
  description:
    'Run the session against a copy of the target rather than the target itself: the operator creates a pod from the ' +
    "target's pod template (probes removed), runs the session's agent there, and deletes the copy when the session " +
    'ends. For a Job that has finished, a Deployment whose pods crash, or a target the team must not touch. Needs the ' +
    'operator on Kubernetes (docs/operator.md, "Copy target"). `true` is the short form of `{ "enabled": true }`.',
  shorthand: {
    schema: z.boolean(),
    expand: (enabled) => ({ enabled }),
    description: '`"copy_target": true` copies the target with the defaults.',
  },
  children: {
    enabled: option({ schema: z.boolean(), default: false, description: 'Run against a copy of the target.' }),
    scale_down: option({
      schema: z.boolean(),
      default: false,
      description:
        'Scale the workload (deployment, statefulset, rollout) to 0 replicas for the session, so only the copy serves; ' +
        'it gets its old replica count back when the session ends, also after an operator restart. One session per workload.',
    }),
    exclude_containers: option({ schema: z.array(z.string().min(1)).max(64), default: [], description: 'Containers of the pod template the copy goes without (a sidecar that must not run twice).' }),
    exclude_init_containers: option({ schema: z.array(z.string().min(1)).max(64), default: [], description: 'Init containers of the pod template the copy goes without.' }),
    command: option({
      schema: z.enum(COPY_COMMANDS),
      default: 'auto',
      description:
        "What the copy's containers run: `keep` their own command, `idle` (a shell that sleeps: the image needs `sh`), " +
        'or `auto`: idle for a job or cronjob (their command ends) and when the target\'s pods crash, kept otherwise.',
    }),
    keep_labels: option({
      schema: z.boolean(),
      default: true,
      description:
        "Give the copy the target's labels (less those a controller adopts pods by, such as `pod-template-hash`), so " +
        "the target's Services send it its share of the traffic. `false`: only remocal's labels, and no Service traffic.",
    }),
  },
});

/** One queue a session splits; the bounds and the regex check are the protocol's, so the operator accepts what passes here. */
const splitQueue = z.strictObject({
  queue_type: z.enum(QUEUE_TYPES),
  message_filter: z.record(z.string(), z.string()).superRefine((filter, context) => {
    const problem = messageFilterProblem(filter);
    if (problem !== null) context.addIssue({ code: 'custom', message: `${problem}.` });
  }),
});

const splitQueues = z.record(z.string(), splitQueue).superRefine((queues, context) => {
  const ids = Object.keys(queues);
  if (ids.length > MAX_SPLIT_QUEUES) context.addIssue({ code: 'custom', message: `names ${ids.length} queues; at most ${MAX_SPLIT_QUEUES} may be split in one session.` });
  for (const id of ids) {
    const problem = queueIdProblem(id);
    if (problem !== null) context.addIssue({ code: 'custom', message: `${problem}.`, path: [id] });
  }
});

const feature = group({
  description: 'What of the target the process gets: environment, files, network.',
  children: {
    env,
    fs,
    network,
    copy_target: copyTarget,
    hostname: mirrordOnly("Report the target's hostname."),
    split_queues: option({
      schema: splitQueues,
      description:
        'Queue splitting (operator, docs/queues.md): queue id → `{ "queue_type": "RMQ" | "NATS", "message_filter": { "<header or property>": "<regex>" } }`. ' +
        'A message of that queue goes to this session when every entry of its filter matches (case-insensitive regexes), and to the ' +
        "deployed app otherwise. The queue ids are those of the workload's RemocalSplitConfig, which the platform team writes.",
      docsDefault: 'not set',
    }),
    db_branches: mirrordOnly('Database branches (operator).'),
    magic: mirrordOnly('Presets such as hiding local AWS credentials.'),
    preview: mirrordOnly('Preview environments (operator).'),
  },
});

export const configOptions = group({
  description: 'remocal configuration.',
  check: (value, context) => {
    const local = value.actions.flatMap((step) => step.outgoing_local ?? []);
    if (local.length > 0 && value.feature.network.outgoing.filter?.remote !== undefined) {
      context.warn(
        'actions',
        `outgoing_local (${local.join(', ')}) is already local under the "remote" outgoing filter, unless a pattern of that filter matches it: then it stays remote.`,
      );
    }
  },
  children: {
    $schema: editorOnly('The JSON Schema of this file, for editors (schema/remocal.schema.json). Ignored by remocal.'),
    target,
    kubeconfig: option({
      schema: z.string().min(1),
      flag: { name: 'kubeconfig', argument: 'FILE' },
      description: 'Path of the kubeconfig file.',
      docsDefault: '$KUBECONFIG, then ~/.kube/config, then the in-cluster config',
    }),
    kube_context: option({
      schema: z.string().min(1),
      flag: { name: 'context', argument: 'CONTEXT' },
      description: 'Context of the kubeconfig to use, as `kubectl --context`.',
      docsDefault: "the kubeconfig's current context",
    }),
    operator: option({
      schema: z.union([z.boolean(), z.literal('auto')]),
      default: 'auto',
      flag: { name: 'operator', argument: 'true|false|auto' },
      description:
        'Go through the remocal operator, which shares one agent per target between sessions (so that several ' +
        'developers can steal one port, each with an HTTP filter): `true` (fail when there is none), `false`, or ' +
        '`"auto"`: for Kubernetes targets, when the cluster has an available operator; for local targets, when ' +
        '`local_operator.url` is set. The session says which path it took.',
    }),
    local_operator: group({
      description: 'A local-mode operator (`remocal operator serve --local`) that shares the targets of one Linux host, such as a team\'s staging VM.',
      children: {
        url: option({
          schema: z.url({ protocol: /^https$/ }),
          flag: { name: 'operator-url', argument: 'URL' },
          description: 'Its address, as `https://<host>:<port>`.',
          docsDefault: 'not set: local targets are reached directly',
        }),
        token: option({
          schema: z.string().min(16),
          env: 'REMOCAL_OPERATOR_TOKEN',
          description: 'Your token, from the operator\'s config (`users`). Prefer the env var to a file others can read.',
          docsDefault: 'not set',
        }),
        ca_file: option({
          schema: z.string().min(1),
          description: 'The CA certificate (PEM) the operator\'s serving certificate is checked against; the operator prints where its own is.',
          docsDefault: 'the system CAs',
        }),
      },
    }),
    accept_invalid_certificates: option({
      schema: z.boolean(),
      notYetSupported: true,
      description: "Accept the Kubernetes API server's certificate even when it does not verify.",
      docsDefault: "the kubeconfig's setting",
    }),
    skip_processes: option({
      schema: nameList(),
      notYetSupported: true,
      description: 'Names of processes (children of the command) that remocal leaves alone.',
      docsDefault: 'not set',
    }),
    agent,
    feature,
    layer: group({
      description: "remocal's code inside the process (remocal's own keys).",
      children: {
        log_level: option({
          schema: z.enum(LOG_LEVELS),
          default: 'silent',
          description: "Log level of remocal's code inside the process. Silent by default, so that the process's own output is untouched.",
        }),
      },
    }),
    actions: option({
      schema: actionList(),
      default: [],
      description:
        'Steps run on this machine before and after the session (remocal\'s own key; docs/actions.md). Each step: `name`, `when` ' +
        '(`before` | `after`), `run` (a shell string run by `/bin/sh -c`, or an argv list run as is) with optional `cwd` and `run_env`, ' +
        'or `job: { template }` (a Job in the cluster, through the operator); optional `wait_for` (`{ "tcp": "host:port" }`, ' +
        '`{ "log": "regex" }` over its output, or `{ "http": "url", "status": 200 }`), `timeout` (seconds), and for `before` steps ' +
        '`env` (overrides of the command\'s environment) and `outgoing_local` (address patterns the command then reaches locally). ' +
        'Values may use `${steps.<step>.<output>}`: a named group of an earlier step\'s `wait_for.log` regex, or `stdout` of a step ' +
        'without `wait_for`. `--no-actions` skips them all.',
    }),
    actions_timeout: option({
      schema: z.int().min(1),
      default: 60,
      description:
        'Seconds an action step may take (to run to its end, or until its `wait_for` passes), unless the step sets its own `timeout`.',
    }),
    skip_build_tools: mirrordOnly('Skip build tools.'),
    skip_extra_build_tools: mirrordOnly('Skip more build tools.'),
    skip_sip: mirrordOnly('macOS SIP patching exceptions.'),
    sip_binaries: mirrordOnly('macOS SIP binaries to patch.'),
    multi_cluster: mirrordOnly('Multi-cluster sessions (operator).'),
    api: mirrordOnly('Local session monitor API.'),
    profile: mirrordOnly('mirrord profile (operator).'),
    container: mirrordOnly('`mirrord container` settings.'),
    telemetry: mirrordOnly('Telemetry switch.'),
    internal_proxy: mirrordOnly('Internal proxy timeouts and logs.'),
    external_proxy: mirrordOnly('External proxy timeouts and logs.'),
    use_proxy: mirrordOnly('Use HTTP(S)_PROXY for the Kubernetes API.'),
    experimental: mirrordOnly('Experimental switches.'),
    startup_retry: mirrordOnly('Retries of the first Kubernetes API requests.'),
    ci: mirrordOnly('`mirrord ci` settings.'),
    key: mirrordOnly('Session key for templates.'),
    traceparent: mirrordOnly('OpenTelemetry trace parent.'),
    baggage: mirrordOnly('OpenTelemetry baggage.'),
    connect_tcp: mirrordOnly('Address of an already running agent.'),
  },
});

/** The resolved configuration: every option present (undefined where it has no default and was not set). */
export type RemocalConfig = ResolvedOf<typeof configOptions>;

/**
 * The config flags, as commander names them (`--fs-mode` → `fsMode`, `--steal` → `steal`). The CLI registers
 * `configFlags()` and passes the parsed options object through as `flags`.
 */
export type ConfigFlags = FlagsOf<typeof configOptions>;
