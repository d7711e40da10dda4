/**
 * Base of every error this project throws on purpose. Each concern defines its own subclasses
 * (src/ltx/errors.ts, src/config/errors.ts, ...) with a stable `code`; callers branch on `code`,
 * never on message text.
 */
export class LitefsError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}
