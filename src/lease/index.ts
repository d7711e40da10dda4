export type { HandoffHandler, HandoffRequest, Lease, Leaser, LeaserType, PrimaryInfo, SyncSet } from "./leaser.js";
export { mayTakeLease } from "./leaser.js";
export { LEASE_ERROR_CODES, LeaseError, isLeaseError, type LeaseErrorCode } from "./errors.js";
export { StaticLease, StaticLeaser, type StaticLeaserOptions } from "./static.js";
export {
  CONSUL_MAX_TTL_MS,
  CONSUL_MIN_TTL_MS,
  ConsulLease,
  ConsulLeaser,
  DEFAULT_LOCK_DELAY_MS,
  DEFAULT_TTL_MS,
  decodePrimaryInfo,
  type ConsulLeaserOptions,
} from "./consul.js";
export { parseConsulUrl, type ConsulEndpoint } from "./consul-api.js";
