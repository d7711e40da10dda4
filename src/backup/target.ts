import type { Readable } from "node:stream";
import type { BackupFile } from "./layout.js";

/** Which object, without its size. */
export type ObjectRef = Pick<BackupFile, "db" | "level" | "minTxid" | "maxTxid">;

/**
 * Where backups are kept: a bucket of an S3-compatible service, or a directory. Both hold the
 * same objects at the same relative paths (layout.ts). Every failure is a BackupError naming the
 * target and the object.
 */
export interface BackupTarget {
  /** The target as configured (s3://bucket/prefix, file:///dir), for messages. */
  readonly url: string;
  /** Fails with BACKUP_TARGET_UNREACHABLE when the storage cannot be used (no bucket, no route, bad credentials). */
  check(): Promise<void>;
  /** Databases that have at least one object. */
  databases(): Promise<string[]>;
  /** Every object of one database, in no particular order. */
  list(db: string): Promise<BackupFile[]>;
  /** Stores the local file at `localPath` as `ref`, whole or not at all. */
  put(ref: ObjectRef, localPath: string, size: number): Promise<void>;
  /** The object's bytes as a stream (BACKUP_MISSING when it is not there). */
  get(ref: ObjectRef): Promise<Readable>;
  /** `length` bytes from `start`; a negative `start` counts from the end (the trailer). */
  readRange(ref: ObjectRef, start: number, length: number): Promise<Uint8Array>;
  delete(refs: readonly ObjectRef[]): Promise<void>;
  close(): void;
}
