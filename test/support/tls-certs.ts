import { randomBytes } from "node:crypto";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { run } from "./sqlite-clients.js";

/** A certificate and its key, as PEM files. */
export interface CertFiles {
  cert: string;
  key: string;
}

/**
 * A certificate authority made with the openssl CLI in `dir`, for tests of http.tls. Keys are
 * P-256 (quick to generate on a busy machine); certificates last two days.
 */
export class TestCa {
  private constructor(
    readonly dir: string,
    readonly name: string,
    /** The CA certificate (http.tls.ca). */
    readonly cert: string,
    private readonly key: string,
  ) {}

  static async create(dir: string, name = "ca"): Promise<TestCa> {
    const cert = path.join(dir, `${name}.pem`);
    const key = path.join(dir, `${name}.key`);
    await openssl(["req", "-x509", ...newKey(key), "-out", cert, "-days", "2", "-subj", `/CN=litefs test ${name}`]);
    return new TestCa(dir, name, cert, key);
  }

  /**
   * A certificate this CA signs, usable by a server and a client, naming 127.0.0.1 and localhost.
   * Written to `<name>.pem` and `<name>.key` (replacing them: a reissue for a reload test).
   */
  async issue(name: string): Promise<CertFiles> {
    const base = path.join(this.dir, name);
    const ext = `${base}.ext`;
    await fsp.writeFile(ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n");
    // Written beside and renamed over: a node reloading on SIGHUP never reads a half-written file.
    await openssl(["req", ...newKey(`${base}.key.new`), "-out", `${base}.csr`, "-subj", `/CN=${name}`]);
    const serial = `0x${randomBytes(8).toString("hex")}`;
    await openssl(["x509", "-req", "-in", `${base}.csr`, "-CA", this.cert, "-CAkey", this.key, "-set_serial", serial, "-days", "2", "-extfile", ext, "-out", `${base}.pem.new`]);
    await fsp.rename(`${base}.key.new`, `${base}.key`);
    await fsp.rename(`${base}.pem.new`, `${base}.pem`);
    return { cert: `${base}.pem`, key: `${base}.key` };
  }
}

function newKey(keyFile: string): string[] {
  return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", keyFile];
}

async function openssl(args: string[]): Promise<void> {
  const r = await run("openssl", args);
  if (r.code !== 0) throw new Error(`openssl ${args.join(" ")} failed (${r.code}): ${r.stderr.trim()}`);
}
