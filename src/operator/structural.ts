// What a Kubernetes API server does with a custom resource on a write, given its CRD's structural schema: prune the
// fields the schema does not know and the nulls it does not allow, then validate, and word every problem as the
// server does (field path, `Unsupported value: …`, `Invalid value: …: … in body should match '…'`). The operator
// validates policy files with it in local mode, so that a file is refused exactly where a cluster would refuse the
// same object; the tests' fake API server answers writes with it. Also: whether a schema is structural at all.
//
// The wording and the order are those of the recorded server (Kubernetes 1.24, its kube-openapi from before
// December 2021; see its `policy-create-*` 422s in test/fixtures/k8s/operator), which this follows on purpose:
// - an error inside an array names the array, without the index (`spec.selector.matchExpressions.operator`):
//   that kube-openapi validated items with the array's own path;
// - the errors of one value come in the validator's order (type, then maxLength, minLength or pattern, format,
//   minimum/maximum, the items and then minItems/maxItems, enum, then the object's properties and `required`);
// - sibling properties are walked in the schema's declared order. The server walks a Go map there, so its order
//   is a rotation of the properties that can differ between two requests; declaring a CRD's properties in the
//   order of the recordings keeps their messages reproducible;
// - duplicates in `x-kubernetes-list-type: set` lists are checked after the schema, by a second walk that names
//   the item with its index (`spec.block[1]`).

import { isIPv6 } from 'node:net';
import { isDeepStrictEqual } from 'node:util';

/** A node of an apiextensions.k8s.io/v1 `openAPIV3Schema`, as far as remocal's CRDs and this validator use it. */
export interface JsonSchemaProps {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  properties?: Record<string, JsonSchemaProps>;
  additionalProperties?: JsonSchemaProps | boolean;
  required?: readonly string[];
  items?: JsonSchemaProps;
  enum?: readonly unknown[];
  pattern?: string;
  format?: string;
  maxLength?: number;
  minLength?: number;
  maxItems?: number;
  minItems?: number;
  minimum?: number;
  maximum?: number;
  minProperties?: number;
  maxProperties?: number;
  nullable?: boolean;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-map-type'?: 'atomic' | 'granular';
  'x-kubernetes-preserve-unknown-fields'?: boolean;
}

/** One problem, as a `details.causes[]` entry of the server's 422 Status. */
export interface StatusCause {
  reason: 'FieldValueRequired' | 'FieldValueNotSupported' | 'FieldValueInvalid' | 'FieldValueDuplicate';
  /** The problem without its field, e.g. `Unsupported value: "x": supported values: "a", "b"`. */
  message: string;
  field: string;
}

export interface SchemaValidation {
  /** A copy of the value as the server would store it: unknown fields and disallowed nulls pruned. */
  value: unknown;
  /** `field: problem`, in the server's words and order; empty when the value is valid. */
  errors: string[];
  /** The same problems as the causes of the server's 422 Status. */
  causes: StatusCause[];
}

/**
 * Prunes and validates `value` against a CRD's `openAPIV3Schema` as the API server does on a create or update. The
 * value is the whole object: its `apiVersion`, `kind` and `metadata` are kept and left to the caller, as the
 * server checks those apart from the schema.
 */
export function validateAgainstSchema(schema: JsonSchemaProps, value: unknown): SchemaValidation {
  const pruned = structuredClone(value);
  prune(pruned, schema, true);
  pruneNulls(pruned, schema);
  const causes: StatusCause[] = [];
  validateNode(pruned, schema, '', causes);
  duplicatesInSets(pruned, schema, '', causes);
  return { value: pruned, errors: causes.map((cause) => `${cause.field}: ${cause.message}`), causes };
}

/**
 * The message of the server's 422 for an object with these errors: `<Kind>.<group> "<name>" is invalid: <errors>`,
 * the errors bracketed when there are several, a message repeated only once (as field.ErrorList.ToAggregate does).
 */
export function invalidObjectMessage(qualifiedKind: string, name: string, errors: readonly string[]): string {
  const distinct = [...new Set(errors)];
  return `${qualifiedKind} ${goQuote(name)} is invalid: ${distinct.length === 1 ? distinct[0]! : `[${distinct.join(', ')}]`}`;
}

// --- pruning ----------------------------------------------------------------------------------------------------

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function valueSchema(schema: JsonSchemaProps): JsonSchemaProps | undefined {
  return typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined;
}

/** Drops what the schema does not declare, in place (structuralpruning.Prune). */
function prune(value: unknown, schema: JsonSchemaProps | undefined, resourceRoot = false): void {
  if (schema?.['x-kubernetes-preserve-unknown-fields'] === true) return;
  if (Array.isArray(value)) {
    for (const item of value) prune(item, schema?.items);
    return;
  }
  if (!isObject(value)) return;
  for (const [key, field] of Object.entries(value)) {
    // A resource's own apiVersion, kind and metadata are not the schema's to prune.
    if (resourceRoot && ((key === 'metadata' && isObject(field)) || ((key === 'apiVersion' || key === 'kind') && typeof field === 'string'))) continue;
    const known = schema?.properties?.[key] ?? (schema === undefined ? undefined : valueSchema(schema));
    if (known === undefined) delete value[key];
    else prune(field, known);
  }
}

/** Drops nulls where the schema does not allow one, in place (defaulting.PruneNonNullableNullsWithoutDefaults). */
function pruneNulls(value: unknown, schema: JsonSchemaProps | undefined): void {
  if (Array.isArray(value)) {
    for (const item of value) pruneNulls(item, schema?.items);
    return;
  }
  if (!isObject(value) || schema === undefined) return;
  for (const [key, field] of Object.entries(value)) {
    const known = schema.properties?.[key] ?? valueSchema(schema);
    if (field === null && known !== undefined && known.nullable !== true) delete value[key];
    else pruneNulls(field, known);
  }
}

// --- validation -------------------------------------------------------------------------------------------------

/** The JSON type of a decoded value, as kube-openapi infers it from the Go value the JSON decoder made. */
function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

/** Formats the server checks (apiextensions' supported formats); any other is stripped from the schema and ignored. */
const SUPPORTED_FORMATS = new Set(['bsonobjectid', 'uri', 'email', 'hostname', 'ipv4', 'ipv6', 'cidr', 'mac', 'uuid', 'uuid3', 'uuid4', 'uuid5', 'isbn', 'isbn10', 'isbn13', 'creditcard', 'ssn', 'hexcolor', 'rgbcolor', 'byte', 'password', 'date', 'duration', 'datetime']);

const formatCheckers: Record<string, (text: string) => boolean> = {
  cidr: isCidr,
  ipv4: (text) => parseIPv4Sloppy(text),
  ipv6: (text) => isIPv6(text) && !text.includes('%'),
};

/**
 * An IPv4 address as Go 1.16's parser (k8s.io/utils/net's "sloppy" one, which the server uses for `cidr`) reads
 * it: four decimal fields up to 255, leading zeros allowed.
 */
function parseIPv4Sloppy(text: string): boolean {
  const fields = text.split('.');
  return fields.length === 4 && fields.every((field) => /^\d{1,7}$/.test(field) && Number(field) <= 255);
}

/** `format: cidr`: an address, `/`, and a prefix length that fits it (net.ParseCIDR, sloppy about leading zeros). */
function isCidr(text: string): boolean {
  const slash = text.indexOf('/');
  if (slash < 0) return false;
  const address = text.slice(0, slash);
  const prefix = text.slice(slash + 1);
  const bits = parseIPv4Sloppy(address) ? 32 : isIPv6(address) && !address.includes('%') ? 128 : 0;
  return bits > 0 && /^\d{1,7}$/.test(prefix) && Number(prefix) <= bits;
}

const patterns = new Map<string, RegExp>();
function compiled(pattern: string): RegExp {
  let regex = patterns.get(pattern);
  if (regex === undefined) {
    regex = new RegExp(pattern, 'u');
    patterns.set(pattern, regex);
  }
  return regex;
}

/** A value as Go's fmt prints it in a field error: %q for strings, %v for numbers and booleans, %#v for the rest. */
function goValue(value: unknown): string {
  if (value === null || value === undefined) return '"null"';
  if (typeof value === 'string') return goQuote(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return goSyntax(value);
}

/** %#v of a decoded JSON value held in an interface{}. */
function goSyntax(value: unknown): string {
  if (value === null) return 'interface {}(nil)';
  if (typeof value === 'string') return goQuote(value);
  if (Array.isArray(value)) return `[]interface {}{${value.map(goSyntax).join(', ')}}`;
  if (isObject(value)) {
    // fmt prints a map's keys sorted.
    const entries = Object.keys(value).sort().map((key) => `${goQuote(key)}:${goSyntax(value[key])}`);
    return `map[string]interface {}{${entries.join(', ')}}`;
  }
  return String(value);
}

const GO_ESCAPES: Readonly<Record<string, string>> = { '\x07': '\\a', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\v': '\\v', '"': '\\"', '\\': '\\\\' };

/** strconv.Quote: what unicode.IsPrint calls printable as it is (letters, marks, numbers, punctuation, symbols, ASCII space), the rest escaped. */
function goQuote(text: string): string {
  let out = '"';
  for (const char of text) {
    const code = char.codePointAt(0)!;
    if (GO_ESCAPES[char] !== undefined) out += GO_ESCAPES[char];
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else if (char === ' ' || /[\p{L}\p{M}\p{N}\p{P}\p{S}]/u.test(char)) out += char;
    else out += code > 0xffff ? `\\U${code.toString(16).padStart(8, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  }
  return `${out}"`;
}

/** A cause in field.Invalid's words: the bad value, then kube-openapi's message, which names the path again. */
function invalid(causes: StatusCause[], path: string, value: unknown, detail: string): void {
  causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${goValue(value)}: ${detail}`, field: path });
}

/** kube-openapi's messages name the path as it is, and "in body" for a request body. */
function inBody(path: string): string {
  return `${path} in body`;
}

function childPath(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function validateNode(value: unknown, schema: JsonSchemaProps, path: string, causes: StatusCause[]): void {
  const type = jsonType(value);
  const format = schema.format !== undefined && SUPPORTED_FORMATS.has(schema.format) ? schema.format : undefined;
  // The type validator. With a format, kube-openapi lets a string or an array through (it leaves it to the format
  // validator, which looks at strings only), and words a wrong scalar by the format of its Go type.
  if (schema.type !== undefined) {
    if (value === null) {
      if (schema.nullable !== true) invalid(causes, path, 'null', `${inBody(path)} must be of type ${schema.type}: "null"`);
    } else if (format !== undefined && schema.type !== 'integer' && schema.type !== 'number' && type !== 'string' && type !== 'array') {
      const goFormat = type === 'integer' ? 'int64' : type === 'number' ? 'float64' : '';
      invalid(causes, path, goFormat, `${inBody(path)} must be of type ${format}: ${goQuote(goFormat)}`);
    } else if (!(format !== undefined && (type === 'string' || type === 'array')) && !(type === schema.type || (type === 'integer' && schema.type === 'number'))) {
      invalid(causes, path, type, `${inBody(path)} must be of type ${schema.type}: ${goQuote(type)}`);
    }
  }
  if (typeof value === 'string') {
    // The string validator stops at its first problem.
    const length = [...value].length;
    if (schema.maxLength !== undefined && length > schema.maxLength) invalid(causes, path, value, `${inBody(path)} should be at most ${schema.maxLength} chars long`);
    else if (schema.minLength !== undefined && length < schema.minLength) invalid(causes, path, value, `${inBody(path)} should be at least ${schema.minLength} chars long`);
    else if (schema.pattern !== undefined && !compiled(schema.pattern).test(value)) invalid(causes, path, value, `${inBody(path)} should match '${schema.pattern}'`);
    if (format !== undefined) {
      const check = formatCheckers[format];
      // A format the server checks and this validator does not would pass here and fail there: refuse to guess.
      if (check === undefined) throw new Error(`validateAgainstSchema does not implement format ${format} (at ${path})`);
      if (!check(value)) invalid(causes, path, value, `${inBody(path)} must be of type ${format}: ${goQuote(value)}`);
    }
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) invalid(causes, path, value, `${inBody(path)} should be greater than or equal to ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) invalid(causes, path, value, `${inBody(path)} should be less than or equal to ${schema.maximum}`);
  }
  if (Array.isArray(value)) {
    // Items carry the array's path: that kube-openapi never passed the index down.
    if (schema.items !== undefined) for (const item of value) validateNode(item, schema.items, path, causes);
    if (schema.minItems !== undefined && value.length < schema.minItems) invalid(causes, path, value.length, `${inBody(path)} should have at least ${schema.minItems} items`);
    if (schema.maxItems !== undefined && value.length > schema.maxItems) invalid(causes, path, value.length, `${inBody(path)} should have at most ${schema.maxItems} items`);
  }
  if (schema.enum !== undefined && schema.enum.length > 0 && !schema.enum.some((allowed) => isDeepStrictEqual(allowed, value))) {
    const supported = schema.enum.map((allowed) => (typeof allowed === 'string' ? goQuote(allowed) : goQuote(JSON.stringify(allowed)))).join(', ');
    causes.push({ reason: 'FieldValueNotSupported', message: `Unsupported value: ${goValue(value)}: supported values: ${supported}`, field: path });
  }
  if (isObject(value)) validateObject(value, schema, path, causes);
}

function validateObject(value: Record<string, unknown>, schema: JsonSchemaProps, path: string, causes: StatusCause[]): void {
  const count = Object.keys(value).length;
  // Too few or too many properties ends the object's validation, as in kube-openapi; the value is the bound.
  if (schema.minProperties !== undefined && count < schema.minProperties) {
    invalid(causes, path, schema.minProperties, `${inBody(path)} should have at least ${schema.minProperties} properties`);
    return;
  }
  if (schema.maxProperties !== undefined && count > schema.maxProperties) {
    invalid(causes, path, schema.maxProperties, `${inBody(path)} should have at most ${schema.maxProperties} properties`);
    return;
  }
  const values = valueSchema(schema);
  if (values !== undefined) {
    for (const [key, field] of Object.entries(value)) if (schema.properties?.[key] === undefined) validateNode(field, values, childPath(path, key), causes);
  }
  for (const [key, property] of Object.entries(schema.properties ?? {})) {
    if (key in value) validateNode(value[key], property, childPath(path, key), causes);
  }
  for (const key of schema.required ?? []) {
    if (!(key in value)) causes.push({ reason: 'FieldValueRequired', message: 'Required value', field: childPath(path, key) });
  }
}

/** The second walk (structurallisttype): a repeated item of a set, named by its index; a value repeated n times is named once. */
function duplicatesInSets(value: unknown, schema: JsonSchemaProps | undefined, path: string, causes: StatusCause[]): void {
  if (schema === undefined) return;
  if (Array.isArray(value)) {
    if (schema['x-kubernetes-list-type'] === 'set') {
      const seen = new Map<string, number>();
      value.forEach((item, index) => {
        const key = JSON.stringify(item);
        const times = seen.get(key) ?? 0;
        seen.set(key, times + 1);
        if (times === 1) causes.push({ reason: 'FieldValueDuplicate', message: `Duplicate value: ${goValue(item)}`, field: `${path}[${index}]` });
      });
    }
    value.forEach((item, index) => duplicatesInSets(item, schema.items, `${path}[${index}]`, causes));
    return;
  }
  if (!isObject(value)) return;
  for (const [key, property] of Object.entries(schema.properties ?? {})) {
    if (key in value) duplicatesInSets(value[key], property, childPath(path, key), causes);
  }
  const values = valueSchema(schema);
  if (values !== undefined) for (const [key, field] of Object.entries(value)) duplicatesInSets(field, values, `${path}[${key}]`, causes);
}

// --- structural or not ------------------------------------------------------------------------------------------

const SCALAR_TYPES = new Set(['string', 'integer', 'number', 'boolean']);
/** What a CRD schema may not use at all (apiextensions v1 validation). */
const FORBIDDEN_KEYWORDS = ['$ref', '$schema', 'id', 'definitions', 'dependencies', 'patternProperties', 'additionalItems'];
const JUNCTORS = ['allOf', 'anyOf', 'oneOf', 'not'];

/**
 * Why `schema` is not a structural schema the API server accepts for a v1 CRD (empty when it is): every node has a
 * type, `properties` and `additionalProperties` exclude each other, arrays have one `items` schema, sets hold
 * scalars, logical junctors only restrict what is specified outside them, `metadata` at the root restricts only the
 * name, and patterns compile.
 */
export function structuralProblems(schema: unknown, path = 'openAPIV3Schema'): string[] {
  const problems: string[] = [];
  checkNode(schema, path, 'root', problems);
  if (isObject(schema) && isObject(schema.properties) && schema.properties.metadata !== undefined) {
    const metadata = schema.properties.metadata as Record<string, unknown>;
    const restricted = Object.keys(isObject(metadata.properties) ? metadata.properties : {}).filter((key) => key !== 'name' && key !== 'generateName');
    if (metadata.type !== 'object' || restricted.length > 0 || Object.keys(metadata).some((key) => key !== 'type' && key !== 'properties')) {
      problems.push(`${path}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified`);
    }
  }
  return problems;
}

type Position = 'root' | 'property' | 'item' | 'junctor';

function checkNode(node: unknown, path: string, position: Position, problems: string[]): void {
  if (!isObject(node)) {
    problems.push(`${path}: Invalid value: must be a schema object`);
    return;
  }
  const preserves = node['x-kubernetes-preserve-unknown-fields'] === true || node['x-kubernetes-int-or-string'] === true;
  if (position === 'junctor') {
    for (const key of ['type', 'additionalProperties', 'default', 'nullable', 'description']) {
      if (node[key] !== undefined) problems.push(`${path}.${key}: Forbidden: must be empty to be structural`);
    }
  } else if (node.type === undefined || node.type === '') {
    if (!preserves) problems.push(`${path}.type: Required value: must not be empty ${position === 'root' ? 'at the root' : position === 'item' ? 'for specified array items' : 'for specified object fields'}`);
  } else if (position === 'root' && node.type !== 'object') {
    problems.push(`${path}.type: Invalid value: ${goQuote(String(node.type))}: must be object at the root`);
  }
  for (const key of FORBIDDEN_KEYWORDS) if (node[key] !== undefined) problems.push(`${path}.${key}: Forbidden: ${key} is not supported`);
  if (node.uniqueItems === true) problems.push(`${path}.uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic`);
  if (node.additionalProperties !== undefined) {
    if (node.properties !== undefined) problems.push(`${path}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive`);
    if (node.additionalProperties === false) problems.push(`${path}.additionalProperties: Forbidden: must not be false`);
    else if (node.additionalProperties !== true) checkNode(node.additionalProperties, `${path}.additionalProperties`, 'property', problems);
  }
  if (node.properties !== undefined) {
    if (!isObject(node.properties)) problems.push(`${path}.properties: Invalid value: must be an object of schemas`);
    else for (const [key, property] of Object.entries(node.properties)) checkNode(property, `${path}.properties[${key}]`, position === 'junctor' ? 'junctor' : 'property', problems);
  }
  if (node.type === 'array' && node.items === undefined && !preserves) problems.push(`${path}.items: Required value: must be specified`);
  if (node.items !== undefined) {
    if (Array.isArray(node.items)) problems.push(`${path}.items: Forbidden: items must be a schema object and not an array`);
    else checkNode(node.items, `${path}.items`, position === 'junctor' ? 'junctor' : 'item', problems);
  }
  const listType = node['x-kubernetes-list-type'];
  if (listType === 'set' && isObject(node.items) && !SCALAR_TYPES.has(String(node.items.type)) && node.items['x-kubernetes-map-type'] !== 'atomic') {
    problems.push(`${path}.items[x-kubernetes-map-type]: Invalid value: must be atomic as item of a list with x-kubernetes-list-type=set`);
  }
  if (listType === 'map' && !Array.isArray(node['x-kubernetes-list-map-keys'])) problems.push(`${path}.x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map`);
  if (typeof node.pattern === 'string') {
    try {
      compiled(node.pattern);
    } catch (error) {
      problems.push(`${path}.pattern: Invalid value: ${goQuote(node.pattern)}: ${(error as Error).message}`);
    }
  }
  for (const junctor of JUNCTORS) {
    const branches = node[junctor] === undefined ? [] : Array.isArray(node[junctor]) ? (node[junctor] as unknown[]) : [node[junctor]];
    branches.forEach((branch, index) => {
      const branchPath = junctor === 'not' ? `${path}.not` : `${path}.${junctor}[${index}]`;
      checkNode(branch, branchPath, 'junctor', problems);
      // What a junctor restricts must be specified outside it too.
      if (isObject(branch) && isObject(branch.properties)) {
        for (const key of Object.keys(branch.properties)) {
          if (!isObject(node.properties) || node.properties[key] === undefined) problems.push(`${branchPath}.properties[${key}]: Forbidden: must have a counterpart in the outer schema`);
        }
      }
    });
  }
}
