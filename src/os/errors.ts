import { LitefsError } from "../errors.js";

export type OsErrorCode =
  /** A system call failed; `errno` names the reason (EBADF, EINVAL, ...). */
  | "OS_SYSCALL_FAILED"
  /** The native library or call is not available on this platform. */
  | "OS_UNSUPPORTED";

/** Thrown by src/os when the operating system refuses something; callers branch on `code`. */
export class OsError extends LitefsError {
  declare readonly code: OsErrorCode;
  /** errno name, e.g. "EBADF"; empty when there is no errno. */
  readonly errno: string;
  readonly syscall: string;

  constructor(
    code: OsErrorCode,
    message: string,
    details: { errno?: string; syscall?: string; cause?: unknown } = {},
  ) {
    super(code, message, { cause: details.cause });
    this.errno = details.errno ?? "";
    this.syscall = details.syscall ?? "";
  }
}
