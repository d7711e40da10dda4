import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ConfigError, readTlsFiles, type TlsConfig } from "../../src/config/index.js";
import { makeTempDir } from "../support/node-process.js";
import { TestCa, type CertFiles } from "../support/tls-certs.js";

let dir: string;
let ca: TestCa;
let node: CertFiles;
let other: CertFiles;

beforeAll(async () => {
  dir = await makeTempDir("tls-files");
  ca = await TestCa.create(dir);
  node = await ca.issue("node");
  other = await ca.issue("other");
});

afterAll(async () => {
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

/** The problems readTlsFiles reports, as `path: message`; fails the test if it accepts the files. */
async function refusal(config: TlsConfig): Promise<string[]> {
  const err = await readTlsFiles(config).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  expect((err as ConfigError).code).toBe("CONFIG_TLS");
  return (err as ConfigError).problems.map((p) => `${p.path}: ${p.message}`);
}

async function write(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await fsp.writeFile(file, text);
  return file;
}

describe("readTlsFiles", () => {
  test("reads a certificate, its key and a CA", async () => {
    const files = await readTlsFiles({ ...node, ca: ca.cert });
    expect(files.cert.toString()).toContain("BEGIN CERTIFICATE");
    expect(files.key.toString()).toContain("PRIVATE KEY");
    expect(files.ca?.toString()).toContain("BEGIN CERTIFICATE");
    expect(Object.keys(await readTlsFiles(node)).sort()).toEqual(["cert", "key"]);
  });

  test("a missing or unreadable file is named with its key, each one", async () => {
    const missing = path.join(dir, "missing.pem");
    expect(await refusal({ cert: missing, key: dir, ca: missing })).toEqual([
      `http.tls.cert: cannot read ${missing}: ENOENT: no such file or directory`,
      `http.tls.key: cannot read ${dir}: EISDIR: illegal operation on a directory`,
      `http.tls.ca: cannot read ${missing}: ENOENT: no such file or directory`,
    ]);
  });

  test("files that are not PEM are refused, naming what each should be", async () => {
    const junk = await write("junk.pem", "not pem\n");
    expect(await refusal({ cert: junk, key: junk, ca: junk })).toEqual([
      `http.tls.cert: ${junk} is not a PEM certificate`,
      `http.tls.key: ${junk} is not a PEM private key (an encrypted key is not supported)`,
      `http.tls.ca: ${junk} is not a PEM certificate (or bundle of them)`,
    ]);
  });

  test("a CA bundle with one broken certificate is refused (TLS would silently skip it)", async () => {
    const good = await fsp.readFile(ca.cert, "utf8");
    const broken = await write("bundle.pem", `${good}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n`);
    expect(await refusal({ ...node, ca: broken })).toEqual([`http.tls.ca: ${broken} is not a PEM certificate (or bundle of them)`]);
    const bundle = await write("bundle-ok.pem", good + (await fsp.readFile(other.cert, "utf8")));
    expect((await readTlsFiles({ ...node, ca: bundle })).ca).toBeDefined();
  });

  test("a key that belongs to another certificate is refused at http.tls.key", async () => {
    expect(await refusal({ cert: node.cert, key: other.key })).toEqual([`http.tls.key: ${other.key} is not the key of the certificate in ${node.cert}`]);
  });
});
