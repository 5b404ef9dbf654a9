// client.test.mjs — web/api.js against a local HTTP server whose replies are
// written out here (no strata needed): the error envelope becomes an
// ApiError with the server's code, status and sentence; a 503 "busy" is
// retried after Retry-After; predict() sends the image as multipart field
// "image", or names an image of the analysed split and sends no body, and
// asks for the reader's k as k<layer>=<k>. (tests/web/api.test.mjs tests the
// real server's API.)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { api, setBase, request, predict, getJSON, imageUrl, encodeImageId, ApiError } from '../../web/api.js';

let server;
let busyCalls = 0;
let lastUpload = null;

before(async () => {
  server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const json = (status, body, headers = {}) => {
      res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    if (url.pathname === '/api/models') return json(200, { models: [{ id: 'felines' }] });
    if (url.pathname === '/api/models/cats') {
      return json(404, { error: { code: 'not_found', message: 'no model named cats' } });
    }
    if (url.pathname === '/api/busy') {
      busyCalls += 1;
      if (busyCalls === 1) return json(503, { error: { code: 'busy', message: 'retry in 1 s' } }, { 'Retry-After': '1' });
      return json(200, { ok: true, calls: busyCalls });
    }
    if (url.pathname === '/api/proxy') {
      res.writeHead(502, { 'Content-Type': 'text/html' });
      return res.end('<html>Bad gateway</html>');
    }
    if (url.pathname === '/api/notjson') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return res.end('{broken');
    }
    if (url.pathname === '/api/models/felines/layers/conv2/scatter') {
      return json(200, { k: Number(url.searchParams.get('k') || 4) });
    }
    if (url.pathname === '/api/models/felines/predict' && req.method === 'POST') {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      lastUpload = { type: req.headers['content-type'], body: Buffer.concat(chunks).toString('latin1'), query: url.search };
      if (url.searchParams.has('image')) return json(200, { predicted: 'cheetah', image: url.searchParams.get('image') });
      if (!/filename="[^"]*"\r\nContent-Type: image\/png/.test(lastUpload.body)) {
        return json(415, { error: { code: 'unsupported_media_type', message: 'send a JPEG or PNG image' } });
      }
      return json(200, { predicted: 'jaguar', probability: 0.8 });
    }
    return json(404, { error: { code: 'not_found', message: `no route ${url.pathname}` } });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  setBase(`http://127.0.0.1:${server.address().port}`);
});

after(() => new Promise((r) => server.close(r)));

test('getJSON returns the parsed document', async () => {
  assert.deepEqual(await api.models(), { models: [{ id: 'felines' }] });
  assert.deepEqual(await api.scatter('felines', 'conv2', 7), { k: 7 });
  assert.deepEqual(await api.scatter('felines', 'conv2'), { k: 4 });
});

test('an error envelope becomes an ApiError with code, status and message', async () => {
  await assert.rejects(api.model('cats'), (e) => {
    assert.ok(e instanceof ApiError);
    assert.ok(e instanceof Error);
    assert.equal(e.status, 404);
    assert.equal(e.code, 'not_found');
    assert.equal(e.message, 'no model named cats');
    return true;
  });
});

test('a non-JSON error page still gives a readable ApiError', async () => {
  await assert.rejects(getJSON('/api/proxy'), (e) => e.status === 502 && e.code === 'http_502' && /502/.test(e.message));
  await assert.rejects(getJSON('/api/notjson'), (e) => e.code === 'bad_json' && e.status === 200);
});

test('503 busy is retried after Retry-After', async () => {
  const t0 = Date.now();
  const r = await getJSON('/api/busy');
  assert.deepEqual(r, { ok: true, calls: 2 });
  assert.ok(Date.now() - t0 >= 900, 'waited about the Retry-After second');
});

test('an unreachable server is a "network" ApiError', async () => {
  await assert.rejects(request('http://127.0.0.1:1/api/health'), (e) => e.code === 'network' && e.status === 0);
});

test('predict posts multipart field "image" with the blob\'s type and name', async () => {
  const png = new Blob([new Uint8Array([0x89, 0x50, 0x4e, 0x47])], { type: 'image/png' });
  const r = await predict('felines', png, { filename: 'x.png' });
  assert.deepEqual(r, { predicted: 'jaguar', probability: 0.8 });
  assert.match(lastUpload.type, /^multipart\/form-data; boundary=/);
  assert.match(lastUpload.body, /Content-Disposition: form-data; name="image"; filename="x.png"/);
  assert.match(lastUpload.body, /\x89PNG/);
  assert.equal(lastUpload.query, '');
  await predict('felines', png, { explain: false });
  assert.equal(lastUpload.query, '?explain=0');
  const text = new Blob(['hello'], { type: 'text/plain' });
  await assert.rejects(predict('felines', text), (e) => e.status === 415 && e.message === 'send a JPEG or PNG image');
  // The reader's k for some layers: k<layer>=<k>, in the order given.
  await predict('felines', png, { explain: false, k: new Map([[3, 5], [9, 2]]) });
  assert.equal(lastUpload.query, '?explain=0&k3=5&k9=2');
  assert.match(lastUpload.body, /\x89PNG/);
});

test('predict names an image of the analysed split and sends no body', async () => {
  const r = await predict('felines', null, { image: 'cheetah/0003.jpg', explain: false });
  assert.deepEqual(r, { predicted: 'cheetah', image: 'cheetah/0003.jpg' });
  assert.equal(lastUpload.query, '?explain=0&image=cheetah%2F0003.jpg');
  assert.equal(lastUpload.body, '', 'no body');
  assert.equal(lastUpload.type, undefined, 'no content type');
  await predict('felines', null, { image: 17, k: [[3, 5]] });
  assert.equal(lastUpload.query, '?image=17&k3=5');
});

test('image ids: class and file encoded as two segments, an index as one', () => {
  assert.equal(encodeImageId('jaguar/0003.jpg'), 'jaguar/0003.jpg');
  assert.equal(encodeImageId('sea lion/a b#1.jpg'), 'sea%20lion/a%20b%231.jpg');
  assert.match(imageUrl('felines', 'jaguar/0003.jpg', { thumb: true }), /\/api\/models\/felines\/images\/jaguar\/0003\.jpg\/thumb$/);
  assert.match(imageUrl('felines', 17), /\/images\/17$/);
});
