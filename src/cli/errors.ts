import { LitefsError } from "../errors.js";

export type CliErrorCode =
  /** The node's API could not be reached (is `litefs mount` running? right -url?). */
  | "CLI_NODE_UNREACHABLE"
  /** The node answered with an error; the message carries its status and reason. */
  | "CLI_NODE_REFUSED"
  /** A command did what it was asked but the result is not what it promised (e.g. promotion). */
  | "CLI_UNEXPECTED_STATE"
  /** A file named on the command line cannot be read (missing, permission). */
  | "CLI_FILE"
  /** A file given as a SQLite database is not one. */
  | "CLI_NOT_SQLITE";

export class CliError extends LitefsError {
  declare readonly code: CliErrorCode;
  /** CLI_NODE_REFUSED: the node's own error code, when it gave one (e.g. NODE_HALT_BUSY). */
  readonly nodeCode?: string;

  constructor(code: CliErrorCode, message: string, options?: { cause?: unknown; nodeCode?: string }) {
    super(code, message, options);
    if (options?.nodeCode !== undefined) this.nodeCode = options.nodeCode;
  }
}
