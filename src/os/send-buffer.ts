import type { Socket } from "node:net";
import { libcFunction } from "./libc.js";

const SOL_SOCKET = 1;
const SO_SNDBUF = 7;

type SetSockOpt = (fd: number, level: number, name: number, value: number[], length: number) => number;

/**
 * Caps the kernel's send buffer of a TCP socket (SO_SNDBUF; the kernel doubles the figure for
 * its bookkeeping), which Node cannot set. Left alone, Linux grows it up to net.ipv4.tcp_wmem's
 * maximum (4 MiB here) for a peer that stops reading, which hides a stalled reader behind
 * megabytes of buffered data. False when the socket has no file descriptor (TLS) or the call
 * failed: the caller then only has its own buffer to go by.
 */
export function limitSendBuffer(socket: Socket, bytes: number): boolean {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  const fn = libcFunction<SetSockOpt>("int setsockopt(int fd, int level, int name, const int *value, uint32_t length)");
  if (!fn || typeof fd !== "number" || fd < 0) return false;
  return fn(fd, SOL_SOCKET, SO_SNDBUF, [bytes], 4) === 0;
}
