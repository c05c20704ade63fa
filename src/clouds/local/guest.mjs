// The `basic` image of the local cloud: a guest that answers HTTP 200 "ok" on the port and address it is given and
// shuts down cleanly on SIGTERM, as a well-behaved server does when its cloud stops it. Plain JavaScript: it starts
// in milliseconds with no loader.
import { createServer } from "node:http";

const port = Number(process.argv[2] ?? process.env.PORT);
const host = process.argv[3] ?? "127.0.0.1";
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error("usage: guest.mjs <port> [address]");
  process.exit(2);
}

const server = createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/plain" });
  res.end("ok");
});
server.keepAliveTimeout = 1_000;
server.listen(port, host, () => console.log(`guest listening on ${host}:${port} (pid ${process.pid})`));

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.once(signal, () => {
    console.log(`guest stopping on ${signal}`);
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
