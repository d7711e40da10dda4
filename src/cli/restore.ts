import * as path from "node:path";
import { InvalidArgumentError, type Command } from "commander";
import { BackupError, openTarget, restoreDatabase } from "../backup/index.js";
import { loadConfig, type BackupConfig } from "../config/index.js";
import { formatTxid } from "../ltx/index.js";

interface RestoreFlags {
  name: string;
  txid?: number;
  timestamp?: number;
  o?: string;
  config?: string;
  url?: string;
  endpoint?: string;
  region?: string;
}

/** Tries per S3 request of `litefs restore` (the daemon's shipper makes 2 and retries on its next interval). */
const RESTORE_S3_ATTEMPTS = 5;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

export function registerRestore(program: Command): void {
  program
    .command("restore")
    .description(
      "rebuild a database from the backup (backup section of the config, or -url) at its newest state, a TXID or a time, " +
        "verifying every object and the final checksum; needs no running node",
    )
    .requiredOption("--name <name>", "database name")
    .option("--txid <txid>", "restore the state right after this TXID (decimal, or 16 hex digits as LiteFS prints them)", parseTxidFlag)
    .option("--timestamp <time>", "restore the state at this RFC 3339 time, e.g. 2026-01-02T15:04:05Z", parseTimestampFlag)
    .option("-o, --o <file>", "where to write the database (default: ./<name>); must not exist")
    .option("--config <path>", "litefs.yml whose backup section names the target")
    .option("--url <url>", "the backup: s3://bucket/prefix or file:///dir (credentials from AWS_* variables)")
    .option("--endpoint <url>", "with -url: the endpoint of an S3-compatible service")
    .option("--region <region>", "with -url: the S3 region")
    .action(async (flags: RestoreFlags) => {
      if (flags.txid !== undefined && flags.timestamp !== undefined) {
        throw new BackupError("BACKUP_BAD_CONFIG", "give -txid or -timestamp, not both");
      }
      // A one-shot command: it rides out a transient S3 error (500 InternalError, throttling) with retries.
      const target = await openTarget(await targetConfig(flags), { s3MaxAttempts: RESTORE_S3_ATTEMPTS });
      try {
        const output = path.resolve(flags.o ?? flags.name);
        const result = await restoreDatabase(target, flags.name, { txid: flags.txid, timestamp: flags.timestamp, output });
        process.stdout.write(
          `restored ${flags.name} at position ${result.position.toString()} (TXID ${formatTxid(result.position.txid)}, ` +
            `committed ${new Date(result.timestamp).toISOString()}) to ${output}: ${result.bytes} bytes from ${result.files.length} objects\n`,
        );
      } finally {
        target.close();
      }
    });
}

async function targetConfig(flags: RestoreFlags): Promise<Pick<BackupConfig, "url" | "endpoint" | "region" | "accessKeyId" | "secretAccessKey" | "forcePathStyle">> {
  if (flags.url !== undefined) {
    return {
      url: flags.url,
      endpoint: flags.endpoint,
      region: flags.region,
      accessKeyId: process.env.AWS_ACCESS_KEY_ID,
      secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
      forcePathStyle: flags.endpoint !== undefined,
    };
  }
  const { config, source } = await loadConfig({ configPath: flags.config });
  if (!config.backup.type) {
    throw new BackupError("BACKUP_BAD_CONFIG", `${source} has no backup section (backup.type is unset): give -url, or -config with a backup section`);
  }
  return config.backup;
}

function parseTxidFlag(text: string): number {
  const t = text.trim();
  const v = /^[0-9a-fA-F]{16}$/.test(t) ? Number.parseInt(t, 16) : /^0x[0-9a-fA-F]+$/.test(t) ? Number.parseInt(t.slice(2), 16) : /^[0-9]+$/.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(v) || v < 1) throw new InvalidArgumentError(`expected a TXID of 1 or more (decimal, 0x..., or 16 hex digits), got ${JSON.stringify(text)}`);
  return v;
}

function parseTimestampFlag(text: string): number {
  const ms = RFC3339.test(text.trim()) ? Date.parse(text.trim()) : NaN;
  if (Number.isNaN(ms)) throw new InvalidArgumentError(`expected an RFC 3339 time such as 2026-01-02T15:04:05Z or 2026-01-02T15:04:05.123+02:00, got ${JSON.stringify(text)}`);
  return ms;
}
