import { LitefsError } from "../errors.js";
import type { MountAgentErrorCode } from "./mount-agent-protocol.js";

export type MountErrorCode =
  /** libfuse refused the mount (no /dev/fuse, not root, fuse.dir unusable, ...). */
  | "MOUNT_FAILED"
  /** fuse.dir holds files that mounting over would hide. */
  | "MOUNT_DIR_NOT_EMPTY";

export class MountError extends LitefsError {
  declare readonly code: MountErrorCode;

  constructor(code: MountErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** A mount agent request that failed; the same code on both sides of the IPC channel. */
export class MountAgentError extends LitefsError {
  declare readonly code: MountAgentErrorCode;

  constructor(code: MountAgentErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
