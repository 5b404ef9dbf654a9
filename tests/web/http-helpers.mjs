// http-helpers.mjs — a real `strata serve` for the API tests: start it on a
// free port, call it, read its error envelope, stop it and check its exit.
// Not a test file itself (its name matches none of node --test's patterns).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The binary: $STRATA_BIN (default build/server/strata), relative to the
 *  working folder or else to the repo. */
export const BIN = (() => {
  const rel = process.env.STRATA_BIN || 'build/server/strata';
  const here = path.resolve(process.cwd(), rel);
  return fs.existsSync(here) ? here : path.resolve(ROOT, rel);
})();

/** The sanitizer build is several times slower: waits are longer there. */
export const SLOW = /asan|sanitize/i.test(BIN) || !!process.env.ASAN_OPTIONS;
export const WAIT_MS = SLOW ? 240_000 : 60_000;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Starts `strata serve` with extra args; resolves once /api/health answers. */
export async function startServer(args) {
  const port = await freePort();
  const proc = spawn(BIN, ['serve', '--port', String(port), ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const srv = { proc, port, base: `http://127.0.0.1:${port}`, stdout: '', stderr: '', exited: null };
  proc.stdout.on('data', (d) => { srv.stdout += d; });
  proc.stderr.on('data', (d) => { srv.stderr += d; });
  srv.exit = new Promise((resolve) => proc.on('exit', (code, signal) => {
    srv.exited = { code, signal };
    resolve(srv.exited);
  }));
  const t0 = Date.now();
  for (;;) {
    if (srv.exited) throw new Error(`strata serve exited early (${JSON.stringify(srv.exited)}):\n${srv.stderr}`);
    try {
      const r = await fetch(`${srv.base}/api/health`);
      if (r.ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() - t0 > WAIT_MS) throw new Error(`strata serve did not answer:\n${srv.stderr}`);
    await sleep(50);
  }
  return srv;
}

/** SIGTERM, then the exit status. */
export async function stopServer(srv) {
  if (!srv || srv.exited) return srv && srv.exited;
  srv.proc.kill('SIGTERM');
  const timer = setTimeout(() => srv.proc.kill('SIGKILL'), 60_000);
  const st = await srv.exit;
  clearTimeout(timer);
  return st;
}

/** fetch, with the body read as bytes. */
export async function call(srv, p, init = {}) {
  const r = await fetch(srv.base + p, init);
  const body = Buffer.from(await r.arrayBuffer());
  return {
    status: r.status,
    headers: r.headers,
    body,
    text: () => body.toString('utf8'),
    json: () => JSON.parse(body.toString('utf8')),
  };
}

/** Asserts an error reply: status and the {"error":{"code","message"}} envelope. */
export function assertError(r, status, code) {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text()}`);
  assert.match(r.headers.get('content-type') || '', /application\/json/);
  const j = r.json();
  assert.equal(typeof j.error, 'object');
  assert.equal(typeof j.error.message, 'string');
  assert.ok(j.error.message.length > 0);
  if (code) assert.equal(j.error.code, code);
  return j.error;
}

/** A raw HTTP/1.1 exchange on a socket: resolves to the status (0 when the
 *  server closed without answering) and the whole reply text. */
export function raw(srv, bytes) {
  return new Promise((resolve) => {
    const sock = net.connect(srv.port, '127.0.0.1');
    let data = '';
    sock.on('data', (d) => { data += d.toString('latin1'); });
    sock.on('error', () => {});
    sock.on('close', () => {
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(data);
      resolve({ status: m ? Number(m[1]) : 0, data });
    });
    sock.setTimeout(20_000, () => sock.destroy());
    sock.end(bytes);
  });
}
