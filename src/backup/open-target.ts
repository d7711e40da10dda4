import { fileURLToPath } from "node:url";
import type { BackupConfig } from "../config/index.js";
import { BackupError } from "./errors.js";
import { FileTarget } from "./file-target.js";
import type { BackupTarget } from "./target.js";

/**
 * The target backup.type and backup.url name (`s3://...` or `file://...`). The AWS SDK is loaded
 * only for an S3 target: it takes a while to load, and every `litefs` command would pay for it.
 */
export async function openTarget(
  config: Pick<BackupConfig, "url" | "endpoint" | "region" | "accessKeyId" | "secretAccessKey" | "forcePathStyle">,
  opts: { s3MaxAttempts?: number } = {},
): Promise<BackupTarget> {
  const url = config.url;
  if (!url) throw new BackupError("BACKUP_BAD_CONFIG", "no backup target: set backup.type and backup.url in the config, or give -url");
  if (url.startsWith("s3://")) {
    const { S3Target } = await import("./s3-target.js");
    return new S3Target({ ...config, url, maxAttempts: opts.s3MaxAttempts });
  }
  if (url.startsWith("file://")) return new FileTarget(fileURLToPath(url));
  if (url.startsWith("/")) return new FileTarget(url);
  throw new BackupError("BACKUP_BAD_CONFIG", `unknown backup URL ${JSON.stringify(url)}: expected s3://bucket/prefix or file:///path`);
}
