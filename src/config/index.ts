export { formatDuration, parseDuration } from "./duration.js";
export { EMBEDDED_CONFIG_YAML } from "./embedded.js";
export { expandEnv } from "./env.js";
export { inactiveSettings, type InactiveSetting } from "./inactive.js";
export { ConfigError, type ConfigErrorCode, type ConfigProblem } from "./errors.js";
export {
  configSearchPaths,
  embeddedConfig,
  loadConfig,
  parseConfig,
  type LoadConfigOptions,
  type ParseConfigOptions,
} from "./load.js";
export { readTlsFiles, type TlsFiles } from "./tls-files.js";
export { DEFAULT_DATA_DIR, DEFAULT_FUSE_DIR, DEFAULT_HTTP_ADDR } from "./schema.js";
export type * from "./types.js";
