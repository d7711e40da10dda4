import { X509Certificate, createPrivateKey, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";
import * as tls from "node:tls";
import { ConfigError, type ConfigProblem } from "./errors.js";
import type { TlsConfig } from "./types.js";

/** The contents of the PEM files http.tls names. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/**
 * Reads the files http.tls names and checks that they make a TLS identity: the certificate and
 * the CA parse, the key parses and belongs to the certificate. Throws a ConfigError (CONFIG_TLS)
 * with one problem per key that is wrong, naming its file. Asynchronous: it also runs on SIGHUP
 * in the daemon, whose event loop serves the mount.
 */
export async function readTlsFiles(config: TlsConfig): Promise<TlsFiles> {
  const problems: ConfigProblem[] = [];
  const problem = (key: keyof TlsConfig, message: string) => problems.push({ path: `http.tls.${key}`, message });
  const read = (file: string): Promise<Buffer | Error> => readFile(file).catch((err: Error) => err);
  const [certRead, keyRead, caRead] = await Promise.all([read(config.cert), read(config.key), config.ca === undefined ? undefined : read(config.ca)]);
  const got = (key: keyof TlsConfig, file: string | undefined, result: Buffer | Error | undefined): Buffer | undefined => {
    if (!(result instanceof Error)) return result;
    // Node's message ends with the system call and the file (", open '<file>'"): named once, here.
    problem(key, `cannot read ${file}: ${result.message.replace(/, \w+( '.*')?$/s, "")}`);
    return undefined;
  };
  const cert = got("cert", config.cert, certRead);
  const key = got("key", config.key, keyRead);
  const ca = got("ca", config.ca, caRead);

  const certificate = cert && parse(() => new X509Certificate(cert), () => problem("cert", `${config.cert} is not a PEM certificate`));
  const privateKey = key && parse(() => createPrivateKey(key), () => problem("key", `${config.key} is not a PEM private key (an encrypted key is not supported)`));
  if (ca) {
    // A file without a certificate in it would silently trust nobody.
    const blocks = ca.toString("latin1").match(PEM_CERTIFICATE) ?? [];
    if (blocks.length === 0 || !blocks.every((b) => parse(() => new X509Certificate(b), () => undefined))) {
      problem("ca", `${config.ca} is not a PEM certificate (or bundle of them)`);
    }
  }
  if (certificate && privateKey && !certificate.checkPrivateKey(privateKey)) {
    problem("key", `${config.key} is not the key of the certificate in ${config.cert}`);
  }
  if (problems.length === 0) {
    try {
      tls.createSecureContext({ cert, key, ca });
    } catch (err) {
      problems.push({ path: "http.tls", message: `cannot be used: ${(err as Error).message}` });
    }
  }
  if (problems.length > 0 || !cert || !key) throw new ConfigError("CONFIG_TLS", "cannot use the files http.tls names", { problems });
  return { cert, key, ...(ca && { ca }) };
}

function parse<T extends X509Certificate | KeyObject>(fn: () => T, onError: () => void): T | undefined {
  try {
    return fn();
  } catch {
    onError();
    return undefined;
  }
}
