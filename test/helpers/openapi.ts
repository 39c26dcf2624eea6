// Checks objects remocal builds (pods, ephemeral containers, jobs) against the OpenAPI v2 document of the
// recorded v1.23 server, strictly: a field the server does not know is a problem here, although the server
// itself would only warn and drop it, because a dropped field is a setting that silently does nothing.

import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

interface Schema {
  type?: string;
  format?: string;
  $ref?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  additionalProperties?: Schema | boolean;
  enum?: unknown[];
  'x-kubernetes-group-version-kind'?: { group: string; version: string; kind: string }[];
}

const intOrString = 'io.k8s.apimachinery.pkg.util.intstr.IntOrString';
const quantity = 'io.k8s.apimachinery.pkg.api.resource.Quantity';

// resource.ParseQuantity's grammar: a signed decimal, then a binary-SI, decimal-SI or exponent suffix.
const quantityPattern = /^[+-]?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;
// metav1.Time and MicroTime decode with time.RFC3339.
const dateTimePattern = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const base64Pattern = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

let definitions: Record<string, Schema> | undefined;

function loadDefinitions(): Record<string, Schema> {
  definitions ??= (JSON.parse(gunzipSync(readFileSync(new URL('../fixtures/k8s/openapi-v2.json.gz', import.meta.url))).toString('utf8')) as { definitions: Record<string, Schema> }).definitions;
  return definitions;
}

function definitionNamed(name: string): Schema {
  const schema = loadDefinitions()[name];
  if (schema === undefined) throw new Error(`the OpenAPI document has no definition ${name}`);
  return schema;
}

function child(path: string, key: string): string {
  const segment = /^[A-Za-z_$][\w$]*$/.test(key) ? key : JSON.stringify(key);
  if (path === '') return segment.startsWith('"') ? `[${segment}]` : segment;
  return segment.startsWith('"') ? `${path}[${segment}]` : `${path}.${segment}`;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number' && !Number.isInteger(value)) return `number ${value}`;
  if (typeof value === 'number') return `integer ${value}`;
  return typeof value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

class Checker {
  readonly problems: string[] = [];

  problem(path: string, message: string): void {
    this.problems.push(`${path === '' ? '(root)' : path}: ${message}`);
  }

  check(value: unknown, schema: Schema, path: string, refName?: string): void {
    if (schema.$ref !== undefined) {
      const name = schema.$ref.replace(/^#\/definitions\//, '');
      this.check(value, definitionNamed(name), path, name);
      return;
    }
    // Go's decoder leaves a field that is null at its zero value, so null is "absent"; `required` catches it.
    if (value === null || value === undefined) return;
    if (refName === quantity) {
      if (typeof value === 'number' ? !Number.isFinite(value) : typeof value !== 'string' || !quantityPattern.test(value)) {
        this.problem(path, `expected a quantity (a string like "500m" or "1Gi", or a number), got ${typeof value === 'string' ? JSON.stringify(value) : describe(value)}`);
      }
      return;
    }
    if (refName === intOrString || schema.format === 'int-or-string') {
      if (typeof value === 'string') return;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < -(2 ** 31) || value >= 2 ** 31) {
        this.problem(path, `expected an integer (int32) or a string, got ${describe(value)}`);
      }
      return;
    }
    if (schema.enum !== undefined && !schema.enum.some((allowed) => allowed === value)) {
      this.problem(path, `expected one of ${schema.enum.map((allowed) => JSON.stringify(allowed)).join(', ')}, got ${JSON.stringify(value)}`);
    }
    switch (schema.type) {
      case undefined:
        // Only free-form JSON (apiextensions JSON and its kin) has neither type nor properties.
        if (schema.properties !== undefined) this.object(value, schema, path);
        return;
      case 'string':
        if (typeof value !== 'string') {
          this.problem(path, `expected string, got ${describe(value)}`);
        } else if (schema.format === 'byte' && !base64Pattern.test(value)) {
          this.problem(path, 'expected base64 data');
        } else if (schema.format === 'date-time' && !dateTimePattern.test(value)) {
          this.problem(path, `expected an RFC 3339 time, got ${JSON.stringify(value)}`);
        }
        return;
      case 'integer':
        if (typeof value !== 'number' || !Number.isInteger(value)) {
          this.problem(path, `expected integer, got ${typeof value === 'string' ? JSON.stringify(value) : describe(value)}`);
        } else if (schema.format === 'int32' && (value < -(2 ** 31) || value >= 2 ** 31)) {
          this.problem(path, `integer ${value} does not fit int32`);
        } else if (!Number.isSafeInteger(value)) {
          this.problem(path, `integer ${value} loses precision`);
        }
        return;
      case 'number':
        if (typeof value !== 'number' || !Number.isFinite(value)) this.problem(path, `expected number, got ${describe(value)}`);
        return;
      case 'boolean':
        if (typeof value !== 'boolean') this.problem(path, `expected boolean, got ${typeof value === 'string' ? JSON.stringify(value) : describe(value)}`);
        return;
      case 'array':
        if (!Array.isArray(value)) {
          this.problem(path, `expected array, got ${describe(value)}`);
          return;
        }
        value.forEach((item, index) => {
          if (schema.items !== undefined) this.check(item, schema.items, `${path}[${index}]`);
        });
        return;
      case 'object':
        this.object(value, schema, path);
        return;
      default:
        throw new Error(`unsupported schema type ${schema.type} at ${path}`);
    }
  }

  object(value: unknown, schema: Schema, path: string, top = false): void {
    if (!isObject(value)) {
      this.problem(path, `expected object, got ${describe(value)}`);
      return;
    }
    const properties = schema.properties;
    const extra = typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined;
    // An object type with neither properties nor a value schema is free-form (FieldsV1, RawExtension).
    if (properties === undefined && extra === undefined) return;
    for (const [key, field] of Object.entries(value)) {
      const fieldPath = child(path, key);
      const known = properties?.[key];
      if (known !== undefined) this.check(field, known, fieldPath);
      else if (extra !== undefined) this.check(field, extra, fieldPath);
      else if (top && (key === 'apiVersion' || key === 'kind')) {
        if (typeof field !== 'string') this.problem(fieldPath, `expected string, got ${describe(field)}`);
      } else this.problem(fieldPath, 'unknown field');
    }
    for (const key of schema.required ?? []) {
      if (value[key] === undefined || value[key] === null) this.problem(child(path, key), 'missing required field');
    }
  }
}

/**
 * Problems of `value` as the OpenAPI definition `definition` (e.g. `io.k8s.api.core.v1.Pod`), each as
 * `path: what is wrong`; empty when it is valid. A top-level `apiVersion`/`kind` is allowed on any
 * definition, and must name the definition's kind when it has one.
 */
export function validateAgainstOpenApi(value: unknown, definition: string): string[] {
  const schema = definitionNamed(definition);
  const checker = new Checker();
  if (schema.$ref !== undefined || (schema.type !== 'object' && schema.properties === undefined)) {
    checker.check(value, schema, '', definition);
    return checker.problems;
  }
  checker.object(value, schema, '', true);
  const kinds = schema['x-kubernetes-group-version-kind'];
  if (isObject(value) && kinds !== undefined && kinds.length > 0) {
    const { apiVersion, kind } = value;
    if (kind !== undefined && !kinds.some((gvk) => gvk.kind === kind)) {
      checker.problem('kind', `expected ${kinds.map((gvk) => JSON.stringify(gvk.kind)).join(' or ')}, got ${JSON.stringify(kind)}`);
    }
    const versions = kinds.map((gvk) => (gvk.group === '' ? gvk.version : `${gvk.group}/${gvk.version}`));
    if (apiVersion !== undefined && !versions.includes(apiVersion as string)) {
      checker.problem('apiVersion', `expected ${versions.map((version) => JSON.stringify(version)).join(' or ')}, got ${JSON.stringify(apiVersion)}`);
    }
  }
  return checker.problems;
}
