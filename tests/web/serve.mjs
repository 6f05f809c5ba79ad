// The browser tests' static file server: folders served under URL prefixes on a free local port,
// as a course's web server would serve the demo. A request goes to the first mount whose prefix
// starts its path (the prefix replaced by "/"), with that mount's extra headers; a directory
// serves its index.html; anything outside the folder, or missing, is a 404.
import { createServer } from "node:http";
import { readFileSync, existsSync, statSync } from "node:fs";
import { join, extname } from "node:path";

const TYPES = {
  ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".css": "text/css",
  ".png": "image/png", ".jpg": "image/jpeg", ".json": "application/json",
};

// serve([{ prefix: "/", dir, headers: {} }, ...]): resolves to { server, base } (base: "http://127.0.0.1:PORT").
export async function serve(mounts) {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const mount = mounts.find((m) => path.startsWith(m.prefix));
    const full = mount && join(mount.dir, "/" + path.slice(mount.prefix.length));
    const file = full && existsSync(full) && statSync(full).isDirectory() ? join(full, "index.html") : full;
    if (!file || !file.startsWith(mount.dir) || !existsSync(file)) { res.writeHead(404); res.end("not found"); return; }
    res.writeHead(200, { ...mount.headers, "Content-Type": TYPES[extname(file)] || "application/octet-stream" });
    res.end(readFileSync(file));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { server, base: `http://127.0.0.1:${server.address().port}` };
}
