import { readFileSync } from "node:fs";
import type { Command } from "commander";

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

export function registerVersion(program: Command): void {
  program
    .command("version")
    .description("print the version")
    .action(() => {
      process.stdout.write(`litefs-ts ${packageVersion()}\n`);
    });
}
