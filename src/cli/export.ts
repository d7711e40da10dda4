import * as fs from "node:fs";
import * as path from "node:path";
import { pipeline } from "node:stream/promises";
import type { Command } from "commander";
import { NodeApi } from "./api-client.js";
import { CliError } from "./errors.js";
import { progress, streamRequest } from "./transfer.js";

export function registerExport(program: Command): void {
  program
    .command("export")
    .description("copy a database, at one position, from any node to a file")
    .requiredOption("--name <name>", "database name on the mount")
    .option("--config <path>", "litefs.yml of the node to ask")
    .option("--url <url>", "API URL of the node (default: from http.addr)")
    .argument("<file>", "where to write the copy (replaced whole, never half-written)")
    .action(async (file: string, flags: { name: string; config?: string; url?: string }) => {
      const api = await NodeApi.fromConfig(flags);
      const res = await streamRequest(api, "GET", `/export?name=${encodeURIComponent(flags.name)}`);
      const position = String(res.headers["litefs-position"] ?? "");
      const size = Number(res.headers["content-length"] ?? 0);
      // Written beside FILE and renamed over it once complete and synced.
      const tmp = path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.litefs-export-${process.pid}`);
      try {
        await pipeline(res.body, progress(`exporting ${flags.name}`, size), fs.createWriteStream(tmp, { mode: 0o644 }));
        const written = fs.statSync(tmp).size;
        if (size && written !== size) throw new CliError("CLI_NODE_REFUSED", `the export of ${flags.name} ended after ${written} of ${size} bytes`);
        const fd = fs.openSync(tmp, "r");
        fs.fsyncSync(fd);
        fs.closeSync(fd);
        fs.renameSync(tmp, file);
      } catch (err) {
        fs.rmSync(tmp, { force: true });
        if (err instanceof CliError) throw err;
        throw new CliError("CLI_FILE", `export of ${flags.name} to ${file} failed, nothing written: ${(err as Error).message}`);
      }
      process.stdout.write(`exported ${flags.name} at position ${position} to ${file} (${size} bytes)\n`);
    });
}
