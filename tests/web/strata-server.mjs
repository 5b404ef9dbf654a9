// strata-server.mjs — helpers for the browser tests: find the strata binary,
// tell whether it has a `serve` command, start it on a free port with a
// fresh cache, wait until every model's analysis is ready, and stop it.
// Not a test file itself (its name matches none of node --test's patterns).

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DATA = path.resolve(REPO, '..', 'shared', 'datasets');

/** The binary to test: $STRATA_BIN, else build/server/strata, relative to the repo root. */
export function strataBin() {
  return path.resolve(REPO, process.env.STRATA_BIN || 'build/server/strata');
}

/** Why the browser tests cannot run (a sentence), or null when they can. */
export function skipReason(bin = strataBin()) {
  if (!fs.existsSync(bin)) return `no strata binary at ${bin} (build it, or set STRATA_BIN)`;
  if (!fs.existsSync(DATA)) return `no datasets at ${DATA} (the demo models' pages show their photos)`;
  const r = spawnSync(bin, ['serve', '--help'], { cwd: REPO, timeout: 20000, encoding: 'utf8' });
  if (r.error) return `could not run ${bin}: ${r.error.message}`;
  if (r.status !== 0) {
    const why = (r.stderr || r.stdout || '').split('\n').find((l) => l.trim()) || `exit status ${r.status}`;
    return `${bin} has no working 'serve' command yet (${why.trim()})`;
  }
  return null;
}

/** A TCP port that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The text of `strata serve --help` ('' when it cannot be run): tests ask
 *  it whether an option (--workspace, say) exists yet. */
export function serveHelp(bin = strataBin()) {
  const r = spawnSync(bin, ['serve', '--help'], { cwd: REPO, timeout: 20000, encoding: 'utf8' });
  return r.status === 0 ? `${r.stdout || ''}${r.stderr || ''}` : '';
}

/**
 * Starts `strata serve --port P --models models --data ../shared/datasets
 * --cache <tmp>` from the repo root ($STRATA_WEB_MODELS replaces `models`,
 * e.g. a folder of freshly trained weights; `extra` adds arguments, such as
 * `--workspace DIR`) and waits (up to timeoutS) until /api/health answers
 * with every analysis ready. Resolves to {base, health, stop(), log()};
 * rejects with the server's last output when it exits, an analysis fails,
 * or time runs out (the server is stopped then).
 */
export async function startServer({ bin = strataBin(), timeoutS = 180, models = process.env.STRATA_WEB_MODELS || 'models', extra = [] } = {}) {
  const port = await freePort();
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-web-cache-'));
  const args = ['serve', '--port', String(port), '--models', models, '--data', path.relative(REPO, DATA), '--cache', cache, ...extra];
  const child = spawn(bin, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  const keep = (buf) => {
    for (const l of buf.toString().split('\n')) if (l) lines.push(l);
    if (lines.length > 300) lines.splice(0, lines.length - 300);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  const log = () => lines.slice(-40).join('\n');

  const stop = async () => {
    if (exited === null) {
      child.kill('SIGTERM');
      for (let i = 0; i < 50 && exited === null; i++) await sleep(100);
      if (exited === null) child.kill('SIGKILL');
    }
    fs.rmSync(cache, { recursive: true, force: true });
  };

  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutS * 1000;
  let health = null;
  try {
    for (;;) {
      if (exited !== null) throw new Error(`strata serve exited (${exited.code ?? exited.signal}) before it was ready:\n${log()}`);
      if (Date.now() > deadline) {
        throw new Error(`strata serve not ready after ${timeoutS} s (last health: ${JSON.stringify(health)}):\n${log()}`);
      }
      try {
        const r = await fetch(`${base}/api/health`);
        if (r.ok) {
          health = await r.json();
          const states = Object.entries(health.analyses || {});
          const failed = states.filter(([, s]) => s === 'failed');
          if (failed.length) {
            let why = '';
            try {
              const list = (await (await fetch(`${base}/api/models`)).json()).models;
              why = list.filter((m) => m.error).map((m) => `  ${m.id}: ${m.error}`).join('\n');
            } catch { /* the server log below says it too */ }
            throw new Error(`analysis failed for ${failed.map(([m]) => m).join(', ')}:\n${why}\n--- server log ---\n${log()}`);
          }
          if (states.length && states.every(([, s]) => s === 'ready')) break;
        }
      } catch (e) {
        if (/analysis failed/.test(e.message)) throw e;
        // Not listening yet: keep polling.
      }
      await sleep(1000);
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { base, health, stop, log };
}

/** Headless Chromium (Debian's, through playwright-core) for the browser
 *  tests: resolves to { browser } or, when it cannot run here, { skip } with
 *  the reason. */
export async function launchChromium() {
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    return { skip: `playwright-core is not installed (npm ci): ${e.message}` };
  }
  if (!fs.existsSync('/usr/bin/chromium')) return { skip: 'no Chromium at /usr/bin/chromium' };
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  return { browser };
}

/** What a browser test needs: the server (started here, or $STRATA_URL's)
 *  and Chromium. Resolves to { base, server (null for $STRATA_URL), browser }
 *  or { skip } with the reason. */
export async function browserSession({ timeoutS = 180 } = {}) {
  let base, server = null;
  if (process.env.STRATA_URL) {
    base = process.env.STRATA_URL.replace(/\/$/, '');
  } else {
    const skip = skipReason();
    if (skip) return { skip };
    server = await startServer({ timeoutS });
    base = server.base;
  }
  const launched = await launchChromium();
  if (launched.skip) return { skip: launched.skip, server, base };
  return { base, server, browser: launched.browser };
}
