import * as fsp from "node:fs/promises";
import S3rver from "s3rver";
import * as path from "node:path";
import { backupObjectsIn, type StoredObject } from "./backup.js";
import { freePort, makeTempDir } from "./node-process.js";

/** s3rver keeps an object's bytes in `<bucket>/<key>._S3rver_object`. */
const S3RVER_OBJECT_SUFFIX = "._S3rver_object";

export const S3_BUCKET = "backups";

/**
 * A real S3-compatible server (s3rver) on a free loopback port, its objects in a temp dir. It
 * can be stopped and started again on the same port with the same objects (an outage).
 */
export class S3Server {
  private server: S3rver | null = null;

  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  static async start(): Promise<S3Server> {
    const s = new S3Server(await freePort(), await makeTempDir("s3"));
    await s.resume();
    return s;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The YAML of a backup section that ships here, or through `endpoint` (a proxy in front); extra keys appended. */
  backupYaml(prefix: string, extra: Record<string, string> = {}, endpoint = this.endpoint): string {
    return [
      "backup:",
      "  type: s3",
      `  url: s3://${S3_BUCKET}/${prefix}`,
      `  endpoint: ${endpoint}`,
      "  region: us-east-1",
      "  access-key-id: S3RVER",
      "  secret-access-key: S3RVER",
      ...Object.entries(extra).map(([k, v]) => `  ${k}: ${v}`),
    ].join("\n");
  }

  async resume(): Promise<void> {
    if (this.server) return;
    const server = new S3rver({ port: this.port, address: "127.0.0.1", directory: this.dir, silent: true, configureBuckets: [{ name: S3_BUCKET, configs: [] }] });
    await server.run();
    this.server = server;
  }

  /** Every object of a database under `prefix`, as stored on s3rver's disk (read after the uploads settled). */
  async objects(prefix: string, db: string): Promise<StoredObject[]> {
    return backupObjectsIn(path.join(this.dir, S3_BUCKET, prefix), db, S3RVER_OBJECT_SUFFIX);
  }

  /** Stops answering (connections are refused) until resume(). */
  async pause(): Promise<void> {
    const server = this.server;
    this.server = null;
    await server?.close();
  }

  async close(): Promise<void> {
    await this.pause();
    await fsp.rm(this.dir, { recursive: true, force: true });
  }
}
