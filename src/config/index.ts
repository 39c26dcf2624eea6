// The config component's public surface.

export { loadConfig, gatherConfig, discoverConfigFile, CONFIG_DIR, CONFIG_FILE_NAMES } from './load.js';
export type { ConfigSource, ConfigFormat, LoadConfigOptions, LoadedConfig } from './load.js';
export { verifyConfig, formatVerifyReport } from './verify.js';
export type { VerifyConfigOptions, VerifyReport } from './verify.js';
export { toLayerSettings } from './layer-settings.js';
export { renderJsonSchema, renderConfigDocs, configFlags, flagUsage } from './render.js';
export type { ConfigFlagInfo } from './render.js';
export { resolveConfig } from './resolve.js';
export { configOptions } from './options.js';
export type { RemocalConfig, ConfigFlags } from './options.js';
export { ConfigValidationError, formatProblem, formatProblems, formatWarning } from './errors.js';
export type { ConfigProblem, ConfigWarning, ConfigOrigin } from './errors.js';
export { parseTargetPath, compileConfigRegex } from './value-types.js';
export type { ParsedTarget, TargetKind } from './value-types.js';
