import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openTarget } from "../../src/backup/index.js";
import { makeTempDir } from "../support/node-process.js";
import { S3Server, S3_BUCKET } from "../support/s3-server.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
});

describe("S3 target listings", () => {
  it("page through more than 1,000 objects (S3 answers at most 1,000 per request)", async () => {
    const s3 = await S3Server.start();
    cleanups.push(() => s3.close());
    const target = await openTarget({ url: `s3://${S3_BUCKET}/paged`, endpoint: s3.endpoint, region: "us-east-1", accessKeyId: "S3RVER", secretAccessKey: "S3RVER", forcePathStyle: true });
    const dir = await makeTempDir("s3-list");
    cleanups.push(() => fsp.rm(dir, { recursive: true, force: true }));
    const file = path.join(dir, "body");
    await fsp.writeFile(file, "x");
    const count = 1005;
    let next = 1;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next <= count) {
          const txid = next++;
          await target.put({ db: "p.db", level: 0, minTxid: txid, maxTxid: txid }, file, 1);
        }
      }),
    );
    const listed = await target.list("p.db");
    expect(listed.length).toBe(count);
    expect(new Set(listed.map((f) => f.minTxid)).size).toBe(count);
  }, 120_000);
});
