/**
 * One port for TLS and a plain-HTTP redirect, like pve-http-server's
 * `ensure_tls_connection` (BEHAVIOR.md §1.1): a plain request gets 301 (GET/HEAD) or 308
 * (other methods) to the https URL. The first byte decides: 0x16 starts a TLS handshake.
 * TLS connections are handed to the HTTPS server untouched (the socket is still paused,
 * nothing was read); only plain ones are read here.
 */
import type { Server } from "node:https";
import type { Socket } from "node:net";

export function dispatchConnection(socket: Socket, tlsServer: Server): void {
  socket.on("error", () => undefined);
  // Peek without consuming: wait until the kernel has data, then read nothing yet.
  socket.once("readable", () => {
    const first = socket.read(1) as Buffer | null;
    if (!first) {
      socket.destroy();
      return;
    }
    if (first[0] === 0x16) {
      socket.unshift(first);
      tlsServer.emit("connection", socket);
      return;
    }
    let head = first.toString("latin1");
    const onData = (d: Buffer) => {
      head += d.toString("latin1");
      if (head.includes("\r\n\r\n") || head.length > 16384) finish();
    };
    const finish = () => {
      socket.off("data", onData);
      const [line, ...rest] = head.split("\r\n");
      const [method = "GET", url = "/"] = line.split(" ");
      const host = rest.find((h) => /^host:/i.test(h))?.slice(5).trim() ?? "localhost";
      const status = method === "GET" || method === "HEAD" ? "301 Moved Permanently" : "308 Permanent Redirect";
      socket.end(`HTTP/1.1 ${status}\r\nLocation: https://${host}${url}\r\nServer: pve-api-daemon/3.0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    };
    socket.on("data", onData);
    socket.resume();
    if (head.includes("\r\n\r\n")) finish();
  });
}
