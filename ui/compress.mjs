// After `vite build`: a gzip copy beside every text file of ui/dist, so the service can
// send the compressed one to browsers that accept it (the binary embeds both).
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const dist = path.join(import.meta.dirname, 'dist');
let before = 0;
let after = 0;
for (const f of fs.readdirSync(dist, { recursive: true }).map(String)) {
  const p = path.join(dist, f);
  if (!/\.(html|js|css|svg|json)$/.test(f) || !fs.statSync(p).isFile()) continue;
  const data = fs.readFileSync(p);
  const gz = zlib.gzipSync(data, { level: 9 });
  fs.writeFileSync(p + '.gz', gz);
  before += data.length;
  after += gz.length;
}
console.log(`gzip copies: ${before} bytes -> ${after} bytes`);
