import { LitefsError } from "../errors.js";

/** Stable codes; callers branch on these, never on message text. */
export const LEASE_ERROR_CODES = [
  /** Another node holds the lease (or Consul's lock-delay still guards the key). */
  "LEASE_PRIMARY_EXISTS",
  /** This node is configured with `candidate: false` and may never become primary. */
  "LEASE_NOT_CANDIDATE",
  /** The lease ran out: Consul lost the session, or renewals failed until the TTL was spent. */
  "LEASE_EXPIRED",
  /** The lease was passed to another node with `handoff()`. */
  "LEASE_HANDED_OFF",
  /** The lease or leaser was closed by its owner. */
  "LEASE_CLOSED",
  /** `handoff()` could not deliver the lease to the target node. */
  "LEASE_HANDOFF_FAILED",
  /** The operation does not exist for this kind of lease (handoff of a static lease). */
  "LEASE_UNSUPPORTED",
  /** Consul did not answer: connection refused or reset, or no answer in time. */
  "LEASE_CONSUL_UNREACHABLE",
  /** Consul answered 403: the ACL token (the password of `lease.consul.url`) lacks permission. */
  "LEASE_CONSUL_DENIED",
  /** Consul answered with another unexpected status. */
  "LEASE_CONSUL_ERROR",
  /** The lease key holds something that is not `{"hostname": ..., "advertise-url": ...}`. */
  "LEASE_BAD_VALUE",
  /** `setClusterId()` found a different cluster ID already stored. */
  "LEASE_CLUSTER_ID_CONFLICT",
  /** Leaser constructor options are wrong (bad URL, TTL below Consul's minimum, ...). */
  "LEASE_INVALID_OPTIONS",
] as const;

export type LeaseErrorCode = (typeof LEASE_ERROR_CODES)[number];

export class LeaseError extends LitefsError {
  declare readonly code: LeaseErrorCode;
  /** The Consul key the error is about, when there is one. */
  readonly key: string | undefined;

  constructor(
    code: LeaseErrorCode,
    message: string,
    options: { key?: string; cause?: unknown } = {},
  ) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause });
    this.key = options.key;
  }
}

export function isLeaseError(err: unknown, code?: LeaseErrorCode): err is LeaseError {
  return err instanceof LeaseError && (code === undefined || err.code === code);
}
