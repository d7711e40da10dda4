import { LitefsError } from "../errors.js";

export type ProxyErrorCode =
  /** The application (proxy.target) or the primary's proxy could not be reached or broke off. */
  | "PROXY_UPSTREAM_FAILED"
  /** No primary could be found within proxy.primary-redirect-timeout. */
  | "PROXY_NO_PRIMARY"
  /** A forwarded write reached a node that is no longer the primary. */
  | "PROXY_NOT_PRIMARY"
  /** The local database did not reach the position the read asked for in time. */
  | "PROXY_TXID_TIMEOUT"
  /** The request itself is wrong (e.g. an unknown Litefs-Consistency level). */
  | "PROXY_BAD_REQUEST"
  /** The client went away before its answer was sent. */
  | "PROXY_CLIENT_GONE"
  /** proxy.addr could not be bound. */
  | "PROXY_LISTEN_FAILED";

const STATUS: Partial<Record<ProxyErrorCode, number>> = {
  PROXY_UPSTREAM_FAILED: 502,
  PROXY_NO_PRIMARY: 503,
  PROXY_NOT_PRIMARY: 503,
  PROXY_TXID_TIMEOUT: 504,
  PROXY_BAD_REQUEST: 400,
};

export class ProxyError extends LitefsError {
  declare readonly code: ProxyErrorCode;

  constructor(code: ProxyErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }

  /** The status the client is answered with. */
  get status(): number {
    return STATUS[this.code] ?? 500;
  }
}
