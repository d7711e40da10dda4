import { LitefsError } from "../errors.js";

export type HttpErrorCode =
  | "HTTP_BAD_REQUEST"
  | "HTTP_UNAUTHORIZED"
  | "HTTP_NOT_FOUND"
  | "HTTP_CONFLICT"
  | "HTTP_NOT_PRIMARY"
  | "HTTP_TIMEOUT"
  | "HTTP_INTERNAL"
  /** http.addr could not be bound. */
  | "HTTP_LISTEN_FAILED"
  /** Another node's API answered with an error or could not be reached. */
  | "HTTP_PEER_FAILED";

const STATUS: Record<Exclude<HttpErrorCode, "HTTP_LISTEN_FAILED" | "HTTP_PEER_FAILED">, number> = {
  HTTP_BAD_REQUEST: 400,
  HTTP_UNAUTHORIZED: 401,
  HTTP_NOT_FOUND: 404,
  HTTP_CONFLICT: 409,
  HTTP_NOT_PRIMARY: 503,
  HTTP_TIMEOUT: 504,
  HTTP_INTERNAL: 500,
};

/** An error the cluster API answers with: the status follows from the code. */
export class HttpError extends LitefsError {
  declare readonly code: HttpErrorCode;
  readonly status: number;

  constructor(code: HttpErrorCode, message: string, options?: { cause?: unknown; status?: number }) {
    super(code, message, options);
    this.status = options?.status ?? (STATUS as Record<string, number>)[code] ?? 500;
  }
}
