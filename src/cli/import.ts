import * as fs from "node:fs";
import type { Command } from "commander";
import { DB_MAGIC, JOURNAL_MAGIC } from "../sqlite/index.js";
import { NodeApi } from "./api-client.js";
import { CliError } from "./errors.js";
import { uploadFile } from "./transfer.js";

interface ImportResult {
  name: string;
  position: string;
  pageSize: number;
  pages: number;
}

export function registerImport(program: Command): void {
  program
    .command("import")
    .description("replace (or create) a database on the primary with a SQLite database file, as one transaction")
    .requiredOption("--name <name>", "database name on the mount")
    .option("--config <path>", "litefs.yml of the node to ask")
    .option("--url <url>", "API URL of the primary (default: from http.addr)")
    .argument("<file>", "SQLite database file to import")
    .action(async (file: string, flags: { name: string; config?: string; url?: string }) => {
      const size = checkLocalFile(file);
      const api = await NodeApi.fromConfig(flags);
      const result = (await uploadFile(api, `/import?name=${encodeURIComponent(flags.name)}`, file, size, `importing ${flags.name}`)) as ImportResult;
      process.stdout.write(`imported ${result.name}: position ${result.position} (${result.pages} pages of ${result.pageSize} bytes)\n`);
    });
}

/**
 * What can be told before sending anything: the file is readable, starts like a SQLite database,
 * and has no transaction in flight beside it (a hot journal, or WAL frames the file alone lacks).
 * The node checks the file itself again.
 */
function checkLocalFile(file: string): number {
  let size: number;
  const head = Buffer.alloc(DB_MAGIC.length);
  try {
    size = fs.statSync(file).size;
    const fd = fs.openSync(file, "r");
    try {
      fs.readSync(fd, head, 0, head.length, 0);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    throw new CliError("CLI_FILE", `cannot read ${file}: ${(err as Error).message}`);
  }
  if (size === 0) throw new CliError("CLI_NOT_SQLITE", `${file} is empty: not a SQLite database`);
  if (!head.equals(Buffer.from(DB_MAGIC))) throw new CliError("CLI_NOT_SQLITE", `${file} is not a SQLite database (it does not start with "SQLite format 3")`);
  if (startsWith(`${file}-journal`, JOURNAL_MAGIC)) {
    throw new CliError("CLI_NOT_SQLITE", `${file}-journal holds an unfinished transaction (a hot journal): open ${file} with sqlite3 once to roll it back, then import`);
  }
  if (fileSize(`${file}-wal`) > 0) {
    throw new CliError("CLI_NOT_SQLITE", `${file}-wal holds transactions the file alone lacks: run sqlite3 ${file} "PRAGMA wal_checkpoint(TRUNCATE)" first, then import`);
  }
  return size;
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

function startsWith(file: string, magic: Uint8Array): boolean {
  try {
    const fd = fs.openSync(file, "r");
    try {
      const buf = Buffer.alloc(magic.length);
      return fs.readSync(fd, buf, 0, buf.length, 0) === buf.length && buf.equals(Buffer.from(magic));
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
}
