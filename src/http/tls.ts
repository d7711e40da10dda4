import type * as https from "node:https";
import type * as tls from "node:tls";
import { Agent, type Dispatcher } from "undici";
import type { Config, TlsFiles } from "../config/index.js";

/** The cluster API speaks https when http.tls is set. */
export function apiScheme(config: Config): "http" | "https" {
  return config.http.tls ? "https" : "http";
}

/** https.createServer's (and setSecureContext's) options: with a CA, peers must present a certificate it signed. */
export function serverTlsOptions(files: TlsFiles): https.ServerOptions {
  const { cert, key, ca } = files;
  return ca ? { cert, key, ca, requestCert: true, rejectUnauthorized: true } : { cert, key };
}

/**
 * How this node (or the CLI with its config) connects to a cluster API over https: with
 * http.tls.ca it verifies against that CA only and presents its own certificate (mutual TLS);
 * without, undefined: the system store, no client certificate.
 */
export function clientTlsOptions(files: TlsFiles | undefined): tls.ConnectionOptions | undefined {
  return files?.ca && { ca: files.ca, cert: files.cert, key: files.key };
}

/** An undici dispatcher for clientTlsOptions(files); undefined means undici's global one. */
export function clusterDispatcher(files: TlsFiles | undefined): Agent | undefined {
  const connect = clientTlsOptions(files);
  return connect && new Agent({ connect });
}

/**
 * The connections this node opens to other nodes' cluster APIs (the replication stream,
 * handoff, /info). On SIGHUP, reload() makes new connections use the re-read files; those
 * already open (a replication stream) keep the identity they were opened with.
 */
export class PeerConnections {
  private agent: Agent | undefined;
  private readonly retired = new Set<Agent>();

  constructor(files: TlsFiles | undefined) {
    this.agent = clusterDispatcher(files);
  }

  /** For undici's `dispatcher` option. */
  get dispatcher(): Dispatcher | undefined {
    return this.agent;
  }

  reload(files: TlsFiles): void {
    const old = this.agent;
    this.agent = clusterDispatcher(files);
    if (!old) return;
    // Closes once its requests are done; a stream to the primary may hold it for long.
    this.retired.add(old);
    void old
      .close()
      .catch(() => undefined)
      .finally(() => this.retired.delete(old));
  }

  async close(): Promise<void> {
    await Promise.all([this.agent, ...this.retired].map((a) => a?.destroy().catch(() => undefined)));
  }
}
