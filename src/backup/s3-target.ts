import * as fs from "node:fs";
import type { Readable } from "node:stream";
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { BackupError } from "./errors.js";
import { objectPath, parseObjectPath, type BackupFile } from "./layout.js";
import type { BackupTarget, ObjectRef } from "./target.js";

export interface S3TargetOptions {
  /** s3://bucket[/prefix] */
  url: string;
  endpoint?: string;
  region?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle?: boolean;
  /**
   * Tries per request, the SDK's backoff between them (default 2: the daemon's shipper tries
   * again on its next interval anyway and must report an outage quickly).
   */
  maxAttempts?: number;
}

/** Objects above this size go up in parts (snapshots of large databases). */
const MULTIPART_THRESHOLD = 16 << 20;
const PART_SIZE = 8 << 20;
/** One request may not hang the shipper: it retries on its next interval instead. */
const REQUEST_TIMEOUT_MS = 30_000;
const CONNECT_TIMEOUT_MS = 5_000;

/**
 * Backups in a bucket of any S3-compatible service, through the AWS SDK v3. Only what every such
 * service implements is used: ListObjectsV2, PutObject, multipart upload, ranged GetObject and
 * DeleteObjects. Checksums are sent only where S3 requires them: the newer default (CRC32 on
 * every upload, aws-chunked bodies) is not understood by every S3-compatible server, and each
 * object is an LTX file that carries its own checksum anyway.
 */
export class S3Target implements BackupTarget {
  readonly url: string;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly client: S3Client;
  private readonly where: string;

  constructor(opts: S3TargetOptions) {
    // The SDK warns on Node 20 about releases after January 2027 (they will need Node 22); the
    // version package-lock.json pins supports Node 20, and the warning would end up in every
    // `litefs restore` output. docs/backup.md says so.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
    const u = parseS3Url(opts.url);
    this.url = opts.url;
    this.bucket = u.bucket;
    this.prefix = u.prefix;
    this.where = opts.endpoint ? `${opts.url} (endpoint ${opts.endpoint})` : opts.url;
    const config: S3ClientConfig = {
      region: opts.region || process.env.AWS_REGION || "us-east-1",
      forcePathStyle: opts.forcePathStyle ?? opts.endpoint !== undefined,
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      maxAttempts: opts.maxAttempts ?? 2,
      requestHandler: { requestTimeout: REQUEST_TIMEOUT_MS, connectionTimeout: CONNECT_TIMEOUT_MS },
      ...(opts.endpoint && { endpoint: opts.endpoint }),
      ...(opts.accessKeyId && opts.secretAccessKey && { credentials: { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey } }),
    };
    this.client = new S3Client(config);
  }

  async check(): Promise<void> {
    await this.call(`bucket ${this.bucket}`, () => this.client.send(new HeadBucketCommand({ Bucket: this.bucket })));
  }

  async databases(): Promise<string[]> {
    const out = new Set<string>();
    let token: string | undefined;
    do {
      const res = await this.call("list", () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.keyPrefix(), Delimiter: "/", ContinuationToken: token })),
      );
      for (const p of res.CommonPrefixes ?? []) {
        const name = p.Prefix?.slice(this.keyPrefix().length).replace(/\/$/, "");
        if (name) out.add(name);
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    // Some S3-compatible servers (s3rver among them) ignore the delimiter under a prefix: derive the names from the keys.
    if (out.size === 0) for (const f of await this.listAll(this.keyPrefix())) out.add(f.db);
    return [...out].sort();
  }

  list(db: string): Promise<BackupFile[]> {
    return this.listAll(`${this.keyPrefix()}${db}/ltx/`, db);
  }

  private async listAll(prefix: string, db?: string): Promise<BackupFile[]> {
    const out: BackupFile[] = [];
    let token: string | undefined;
    do {
      const res = await this.call(`list ${db ?? "databases"}`, () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token })),
      );
      for (const o of res.Contents ?? []) {
        const parsed = o.Key ? parseObjectPath(o.Key.slice(this.keyPrefix().length), o.Size ?? 0) : null;
        if (parsed) out.push(parsed);
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async put(ref: ObjectRef, localPath: string, size: number): Promise<void> {
    const key = this.key(ref);
    await this.call(`upload ${objectPath(ref)}`, async () => {
      if (size <= MULTIPART_THRESHOLD) {
        const body = await fs.promises.readFile(localPath);
        await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: body.length }));
        return;
      }
      const upload = new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key: key, Body: fs.createReadStream(localPath, { highWaterMark: 1 << 20 }) },
        partSize: PART_SIZE,
        queueSize: 2,
        leavePartsOnError: false,
      });
      await upload.done();
    });
  }

  async get(ref: ObjectRef): Promise<Readable> {
    const res = await this.call(`download ${objectPath(ref)}`, () => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(ref) })), ref);
    return res.Body as Readable;
  }

  async readRange(ref: ObjectRef, start: number, length: number): Promise<Uint8Array> {
    if (start < 0) {
      // A suffix range (bytes=-16) is not served right by every S3-compatible server (s3rver
      // answers from the start): ask for the size and read an explicit range.
      const head = await this.call(`read ${objectPath(ref)}`, () => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(ref) })), ref);
      start = Math.max(0, (head.ContentLength ?? 0) + start);
    }
    const range = `bytes=${start}-${start + length - 1}`;
    const res = await this.call(`read ${objectPath(ref)}`, () => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(ref), Range: range })), ref);
    const bytes = await res.Body!.transformToByteArray();
    return bytes.subarray(0, length);
  }

  async delete(refs: readonly ObjectRef[]): Promise<void> {
    for (let i = 0; i < refs.length; i += 1000) {
      const batch = refs.slice(i, i + 1000);
      const res = await this.call(`delete ${batch.length} objects`, () =>
        this.client.send(
          new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((r) => ({ Key: this.key(r) })), Quiet: true } }),
        ),
      );
      const failed = res.Errors ?? [];
      if (failed.length) {
        throw new BackupError("BACKUP_TARGET_UNREACHABLE", `${this.where}: cannot delete ${failed[0]!.Key}: ${failed[0]!.Code} ${failed[0]!.Message ?? ""}`.trim());
      }
    }
  }

  close(): void {
    this.client.destroy();
  }

  private keyPrefix(): string {
    return this.prefix ? `${this.prefix}/` : "";
  }

  private key(ref: ObjectRef): string {
    return `${this.keyPrefix()}${objectPath(ref)}`;
  }

  /** Runs one request; every failure becomes a BackupError naming the target and what was asked. */
  private async call<T>(what: string, fn: () => Promise<T>, ref?: ObjectRef): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const e = err as Error & { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
      const status = e.$metadata?.httpStatusCode;
      if (ref && (e.name === "NoSuchKey" || status === 404)) {
        throw new BackupError("BACKUP_MISSING", `${this.where}: object ${objectPath(ref)} is missing`, { cause: err });
      }
      const detail = [e.name, status && `HTTP ${status}`, e.message].filter(Boolean).join(": ");
      throw new BackupError("BACKUP_TARGET_UNREACHABLE", `${this.where}: ${what} failed: ${detail}`, { cause: err });
    }
  }
}

export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m || !m[1]) throw new BackupError("BACKUP_BAD_CONFIG", `bad S3 URL ${JSON.stringify(url)}: expected s3://bucket[/prefix]`);
  return { bucket: m[1], prefix: m[2]!.replace(/\/+$/, "") };
}
