// import.test.mjs — "Your model" end to end, in a real browser (Chromium
// through playwright-core) against a real `strata serve` started here with an
// empty --workspace: a residual CNN that PyTorch trained on the felines
// photos ($STRATA_ONNX_REFS/residual/residual.onnx, with its classes, mean and
// std in residual.reference.json) is imported through the page, once with a
// .zip of class folders built here from the shared felines photos (read at
// test time, never kept) and once with the server's felines dataset; each
// is analysed (the progress shown on its page), its layers, an upload's
// answer, doubt, LIME and path, and a mistake's LIME, are seen on its page, and it is deleted
// through the page. Refusals: a name that is not .onnx (refused before
// sending), a text file named .onnx and an archive without images (the
// server's sentence, the form kept as it was). A file strata exported
// (felines-seed, by `strata export`) is imported with its title,
// classes and normalisation left empty: the page says what the file
// carries, picks "From the file", and the result says which fields came
// from it; the residual file, which carries nothing, has its missing title
// asked for before sending. Screenshots of each step at
// 1280×800 and on a 390×844 touch phone go to tests/artifacts/import-*.png;
// no console errors anywhere.
//
// Every test is SKIPPED, with the reason, when $STRATA_ONNX_REFS or the
// model is missing, when the binary cannot serve or has no --workspace, or
// when Chromium cannot run.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { DATA, REPO, strataBin } from './strata-server.mjs';
import { ARTIFACTS, DESKTOP_SIZE, PHONE_SIZE, READY_TIMEOUT_S, STEP_MS, getJSON as getJSONFrom, openPage, screenshot,
  modelPageReady as pageReady, RESIDUAL_ONNX as ONNX, residualReference, tempWorkspace, workspaceSession,
  pathsLines, uploadSegmentAt } from './pages.mjs';

const DESKTOP = { viewport: DESKTOP_SIZE };
const PHONE = { viewport: PHONE_SIZE, isMobile: true, hasTouch: true }; // at one pixel per CSS pixel
const N_TRAIN = 40; // photos per class in the archive's train/ ...
const N_TEST = 15; // ... and test/ folders

let skip = null;
let server = null;
let base = null;
let browser = null;
let tmp = null;
let reference = null; // residual.reference.json
const files = {}; // the archives and bad files built in tmp
const imported = {}; // id -> {title, reply}

before(async () => {
  ({ skip = null, reference = null } = residualReference('where models imported through the page are kept'));
  if (skip) return;
  let workspace;
  ({ tmp, workspace } = tempWorkspace('import'));
  buildFiles();
  const session = await workspaceSession(workspace);
  ({ server, base, browser = null } = session);
  if (session.skip) { skip = session.skip; return; }
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** The first `n` photos (by name) of a class folder of the shared felines. */
function photos(split, cls, n) {
  const dir = path.join(DATA, 'felines', split, cls);
  return fs.readdirSync(dir).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort().slice(0, n).map((f) => path.join(dir, f));
}

/** Builds in tmp: a .zip of train/<class>/ and test/<class>/ folders of
 *  felines photos, a .zip holding no image, and a text file named .onnx. */
function buildFiles() {
  const root = path.join(tmp, 'felines-small');
  for (const [split, n] of [['train', N_TRAIN], ['test', N_TEST]]) {
    for (const cls of reference.classes) {
      const dst = path.join(root, split, cls);
      fs.mkdirSync(dst, { recursive: true });
      for (const f of photos(split, cls, n)) fs.copyFileSync(f, path.join(dst, path.basename(f)));
    }
  }
  files.archive = path.join(tmp, 'felines-small.zip');
  execFileSync('zip', ['-q', '-r', files.archive, 'train', 'test'], { cwd: root });

  const empty = path.join(tmp, 'no-images');
  fs.mkdirSync(path.join(empty, 'cheetah'), { recursive: true });
  fs.writeFileSync(path.join(empty, 'README.txt'), 'Photos to come.\n');
  fs.writeFileSync(path.join(empty, 'cheetah', 'notes.txt'), 'Spotted, fast.\n');
  files.empty = path.join(tmp, 'no-images.zip');
  execFileSync('zip', ['-q', '-r', files.empty, 'README.txt', 'cheetah'], { cwd: empty });

  files.fake = path.join(tmp, 'not-a-model.onnx');
  fs.writeFileSync(files.fake, 'This is a text file, not a model.\n'.repeat(20));
  files.wrongName = path.join(tmp, 'weights.pt');
  fs.writeFileSync(files.wrongName, 'PyTorch weights would be here.\n');
  // A test photo the archive does not hold (past the first N_TEST).
  files.photo = photos('test', reference.classes[1], 1000).at(-1);
  // A file strata exported: its metadata carries its title, classes, mean and std.
  files.exported = path.join(tmp, 'felines-seed.onnx');
  execFileSync(strataBin(), ['export', 'felines-seed', '--out', files.exported, '--models', path.join(REPO, 'models')]);
  files.exportedModel = JSON.parse(fs.readFileSync(path.join(REPO, 'models', 'felines-seed', 'model.json'), 'utf8'));
}

const getJSON = (p) => getJSONFrom(base, p);

/** A page of base + url recording console errors (pages.mjs's openPage);
 *  `allow` names expected ones, e.g. the resource error of a refused import. */
const open = (ctx, url, allow = null) => openPage(ctx, base, url, { allow });
const shot = (page, name) => screenshot(page, `import-${name}`, { fullPage: true, fromTop: true });

/** The preset radio for the reference's normalisation, or "custom". */
function normOf(ref) {
  const same = (a, b) => a.every((v, i) => Math.abs(v - b[i]) < 1e-6);
  if (same(ref.mean, [0.485, 0.456, 0.406]) && same(ref.std, [0.229, 0.224, 0.225])) return 'imagenet';
  if (same(ref.mean, [0, 0, 0]) && same(ref.std, [1, 1, 1])) return 'unit';
  if (same(ref.mean, [0.5, 0.5, 0.5]) && same(ref.std, [0.5, 0.5, 0.5])) return 'symmetric';
  return 'custom';
}

/** Fills the import form. `images` is a file path (an archive) or {dataset}. */
async function fillForm(page, { model, title, id = '', images, classes = null, norm = normOf(reference) }) {
  await page.setInputFiles('#model-file', model);
  await page.fill('#title', title);
  await page.fill('#model-id', id);
  if (typeof images === 'string') {
    await page.check('input[name="images-from"][value="archive"]');
    await page.setInputFiles('#archive-file', images);
  } else {
    await page.check('input[name="images-from"][value="dataset"]');
    await page.selectOption('#dataset', images.dataset);
  }
  if (classes) {
    await page.check('input[name="classes-from"][value="typed"]');
    await page.fill('#classes', classes);
  } else {
    await page.check('input[name="classes-from"][value="images"]');
  }
  await page.check(`input[name="norm"][value="${norm}"]`);
  if (norm === 'custom') {
    for (let c = 0; c < 3; c++) {
      await page.fill(`#mean-${c}`, String(reference.mean[c]));
      await page.fill(`#std-${c}`, String(reference.std[c]));
    }
  }
}

/** Everything a person typed or chose in the form, as the page holds it. */
const formState = () => ({
  model: document.getElementById('model-file').files[0]?.name || null,
  archive: document.getElementById('archive-file').files[0]?.name || null,
  title: document.getElementById('title').value,
  id: document.getElementById('model-id').value,
  imagesFrom: document.querySelector('input[name="images-from"]:checked').value,
  dataset: document.getElementById('dataset').value,
  classesFrom: document.querySelector('input[name="classes-from"]:checked').value,
  classes: document.getElementById('classes').value,
  norm: document.querySelector('input[name="norm"]:checked').value,
  mean: [0, 1, 2].map((i) => document.getElementById(`mean-${i}`).value),
  std: [0, 1, 2].map((i) => document.getElementById(`std-${i}`).value),
  hidden: document.getElementById('import-form').hidden,
});

const isImportPost = (r) => new URL(r.url()).pathname === '/api/models' && r.request().method() === 'POST';

/** Waits until the model page has drawn its parallel graph (an analysis
 *  may still be running: up to READY_TIMEOUT_S) and first scatter. */
const modelPageReady = (page) => pageReady(page, { parcatsTimeoutMs: READY_TIMEOUT_S * 1000 });

const imagePoints = () => {
  const gd = document.getElementById('scatter');
  return gd.data.filter((t) => t.name !== 'cluster centres' && t.name !== 'your image').reduce((s, t) => s + t.x.length, 0);
};

/** Records, in the page, every progress text the analysis banner shows. */
function watchBanner() {
  window.__bannerSeen = [];
  new MutationObserver(() => {
    const p = document.querySelector('#analysis-banner [data-progress]');
    const text = p ? p.textContent : '';
    if (text && window.__bannerSeen.at(-1) !== text) window.__bannerSeen.push(text);
  }).observe(document, { subtree: true, childList: true, characterData: true });
}

// --- the page, and what it refuses before sending --------------------------------

test('home and import page: "Your models" empty, the form at both sizes, a wrong file name refused before sending', async (t) => {
  if (skip) { t.skip(skip); return; }
  const health = await getJSON('/api/health');
  const { datasets } = await getJSON('/api/datasets');
  for (const [ctxOpts, size] of [[DESKTOP, 'desktop'], [PHONE, 'phone']]) {
    const ctx = await browser.newContext(ctxOpts);
    const { page, errors } = await open(ctx, '/');
    await page.waitForSelector('#own-cards .own-empty');
    assert.match(await page.locator('#own-cards').innerText(), /None yet/);
    assert.equal(await page.locator('.dataset-card:not(.own-card)').count(), 3, 'the demo dataset cards are there');
    await shot(page, `home-empty-${size}`);
    // The home page's entry leads to the form.
    await page.locator('#use-own-model').click();
    await page.waitForURL(/\/import\.html$/);
    await page.waitForSelector('#dataset option[value="felines"]', { state: 'attached' });
    // The server's limits, in words; the datasets it has; the id from the title.
    const hints = await page.locator('#import-form').innerText();
    assert.ok(hints.includes(`${health.max_model_mb ?? 300}\u00a0MB`), 'the model limit is stated');
    assert.ok(hints.includes(`${health.max_archive_mb ?? 1024}\u00a0MB`), 'the archive limit is stated');
    assert.match(hints, /20\u00a0% of each class/);
    assert.match(hints, /ImageFolder/);
    assert.match(hints, /x = \(pixel \/ 255 − mean\) \/ std/);
    const options = await page.$$eval('#dataset option', (os) => os.map((o) => o.value));
    assert.deepEqual(options, datasets.map((d) => d.name));
    await page.fill('#title', 'Félins: my ResNet (v2)');
    assert.equal(await page.locator('#id-shown').innerText(), '/model.html?id=felins-my-resnet-v2');
    // Custom normalisation opens six inputs.
    await page.check('input[name="norm"][value="custom"]');
    assert.equal(await page.locator('#norm-custom input[type="number"]').count(), 6);
    assert.ok(await page.locator('#norm-custom').isVisible());
    // A server dataset: its classes shown, sorted as the folders are.
    await page.check('input[name="images-from"][value="dataset"]');
    await page.selectOption('#dataset', 'felines');
    assert.match(await page.locator('#classes-preview').innerText(), /cheetah, jaguar, leopard, tiger/);
    await shot(page, `form-${size}`);
    // Not a .onnx name: said at once, and nothing is sent on submit.
    let posts = 0;
    page.on('request', (r) => { if (isImportPost(r)) posts += 1; });
    await page.setInputFiles('#model-file', files.wrongName);
    await page.waitForSelector('#model-error:not([hidden])');
    assert.match(await page.locator('#model-error').innerText(), /“weights\.pt” is not an ONNX file/);
    await page.click('#import-submit');
    await page.waitForSelector('#import-status[data-state="invalid"]');
    assert.equal(posts, 0, 'nothing was sent');
    assert.equal(await page.locator('#model-file').getAttribute('aria-invalid'), 'true');
    await page.locator('#model-error').scrollIntoViewIfNeeded();
    await shot(page, `refused-name-${size}`);
    // The models menu leads here too.
    await page.click('#menu-button');
    assert.equal(await page.locator('#menu-panel a.menu-action').getAttribute('href'), '/import.html');
    assert.deepEqual(errors, []);
    await ctx.close();
  }
});

// --- refusals by the server -----------------------------------------------------------

test('import refused by the server: its sentence shown, the form kept as it was', async (t) => {
  if (skip) { t.skip(skip); return; }
  const cases = [
    { name: 'not-onnx', ctx: DESKTOP, form: { model: files.fake, title: 'Not a model', id: 'not-a-model', images: files.archive,
      classes: reference.classes.join(', ') } },
    { name: 'no-images', ctx: PHONE, form: { model: ONNX, title: 'No images at all', images: files.empty, norm: 'custom' } },
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      const ctx = await browser.newContext(c.ctx);
      const { page, errors } = await open(ctx, '/import.html', /status of 400/);
      await page.waitForSelector('#dataset option[value="felines"]', { state: 'attached' });
      await fillForm(page, c.form);
      const before = await page.evaluate(formState);
      const replyP = page.waitForResponse(isImportPost, { timeout: 2 * STEP_MS });
      await page.click('#import-submit');
      const reply = await replyP;
      assert.equal(reply.status(), 400, `${c.name}: status`);
      const envelope = await reply.json();
      assert.match(envelope.error.code, /^bad_(request|input)$/);
      await page.waitForSelector('#import-status[data-state="error"] .error');
      const shown = await page.locator('#import-status .error').innerText();
      assert.ok(shown.includes(envelope.error.message), `"${shown}" says "${envelope.error.message}"`);
      assert.match(shown, /could not import/);
      assert.match(shown, /The form is as you left it/);
      assert.deepEqual(await page.evaluate(formState), before, 'nothing typed or chosen is lost');
      assert.equal(await page.locator('#import-submit').isEnabled(), true, 'it can be sent again');
      await page.locator('#import-status').scrollIntoViewIfNeeded();
      await shot(page, `refused-${c.name}-${c.ctx === PHONE ? 'phone' : 'desktop'}`);
      assert.deepEqual(errors, []);
      await ctx.close();
    });
  }
  const { models } = await getJSON('/api/models');
  assert.ok(!models.some((m) => m.uploaded), 'no refused import left a model behind');
});

// --- a model and its archive, through the page -------------------------------------

test('import with an archive: progress, report, analysis, every layer, an upload, at both sizes', async (t) => {
  if (skip) { t.skip(skip); return; }
  const title = 'Imported residual net';
  const id = 'imported-residual-net';
  const ctx = await browser.newContext(DESKTOP);
  const { page, errors } = await open(ctx, '/import.html');
  await page.waitForSelector('#dataset option[value="felines"]', { state: 'attached' });
  await fillForm(page, { model: ONNX, title, images: files.archive });
  assert.equal(await page.locator('#id-shown').innerText(), `/model.html?id=${id}`);
  // Slow the upload down so that its progress can be seen.
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions',
    { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 2 * 1024 * 1024 });
  const replyP = page.waitForResponse(isImportPost, { timeout: 4 * STEP_MS });
  await page.click('#import-submit');
  await page.waitForFunction(() => {
    const bar = document.querySelector('#import-status progress');
    return bar && bar.value > 0.1 && bar.value < 0.9;
  });
  assert.match(await page.locator('.upload-progress-text').innerText(), /^Sending: [\d.]+\u00a0(kB|MB) of [\d.]+\u00a0MB \(\d+\u00a0%\)$/);
  await shot(page, 'sending-desktop');
  const reply = await replyP;
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  assert.equal(reply.status(), 201);
  assert.equal(reply.headers().location, `/api/models/${id}`);
  const body = await reply.json();
  imported[id] = { title, body };
  // Every byte went, as the upload events said.
  const sent = await page.locator('#import-status').getAttribute('data-sent');
  const bytes = fs.statSync(ONNX).size + fs.statSync(files.archive).size;
  assert.ok(Number(sent) >= bytes, `progress reached ${sent} of at least ${bytes} bytes`);

  // The report: what the server kept, per class and split; the split the archive had.
  assert.equal(body.id, id);
  assert.equal(body.model.uploaded, true);
  assert.equal(body.report.split, 'archive');
  assert.deepEqual(body.report.classes.map((c) => c.name), reference.classes);
  for (const c of body.report.classes) assert.deepEqual([c.train, c.test], [N_TRAIN, N_TEST], c.name);
  assert.equal(body.report.images, reference.classes.length * (N_TRAIN + N_TEST));
  await page.waitForSelector('#import-result:not([hidden]) #report-classes');
  const rows = await page.$$eval('#report-classes tbody tr', (trs) => trs.map((tr) => [tr.dataset.class,
    ...[...tr.querySelectorAll('td')].map((td) => Number(td.textContent))]));
  assert.deepEqual(rows, body.report.classes.map((c) => [c.name, c.train, c.test]));
  assert.match(await page.locator('#report-summary').innerText(), new RegExp(`^${body.report.images} images of 4 classes kept`));
  assert.equal(await page.locator('#report-split').getAttribute('data-split'), 'archive');
  assert.equal(Number(await page.locator('#report-skipped').getAttribute('data-skipped') ?? 0), body.report.n_skipped);
  // The result follows the analysis, starting from the reply's own state.
  const first = body.model.analysis;
  assert.ok(['queued', 'analysing', 'ready'].includes(first), `state in the reply: ${first}`);
  await page.waitForSelector('#import-analysis[data-state]');
  if (first !== 'ready') {
    assert.ok(['queued', 'analysing', 'ready'].includes(await page.locator('#import-analysis').getAttribute('data-state')));
  }
  await shot(page, 'report-desktop');

  // The API says the analysis is under way, with its progress while it runs.
  const listed = (await getJSON('/api/models')).models.find((m) => m.id === id);
  assert.ok(listed && listed.uploaded, 'listed, marked uploaded');
  assert.ok(['queued', 'analysing', 'ready'].includes(listed.analysis), `state ${listed.analysis}`);

  // Its page: the banner follows the server's progress until the graphs come.
  await page.addInitScript(watchBanner);
  const seen = [];
  page.on('response', async (r) => {
    if (new URL(r.url()).pathname !== `/api/models/${id}` || !r.ok()) return;
    try {
      const m = await r.json();
      seen.push({ state: m.analysis?.state, progress: m.progress ?? null });
    } catch { /* a navigation away drops the body */ }
  });
  await page.click('#open-model');
  await page.waitForURL(new RegExp(`/model\\.html\\?id=${id}$`));
  // A picture of the banner, when the analysis is still running.
  try {
    await page.waitForSelector('#analysis-banner [data-progress]', { timeout: 3000 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'import-analysing-desktop.png') });
  } catch {
    t.diagnostic('the analysis was over before the banner could be pictured');
  }
  await modelPageReady(page);
  const banner = await page.evaluate(() => window.__bannerSeen);
  const running = seen.filter((s) => s.state === 'queued' || s.state === 'analysing');
  t.diagnostic(`banner showed: ${banner.join(' | ') || '(nothing: the analysis was done before the page asked)'}`);
  if (running.length) assert.ok(banner.length > 0, 'the banner showed the state while the analysis ran');
  if (running.some((s) => s.progress)) {
    assert.ok(banner.some((b) => /^analysing: .+ \d+\/\d+/.test(b)), `the banner showed the progress: ${banner}`);
  }
  for (const s of running) {
    if (s.progress) assert.ok(Number.isFinite(s.progress.done) && s.progress.total > 0 && s.progress.stage, JSON.stringify(s.progress));
  }
  assert.equal(await page.locator('#analysis-banner').count(), 0, 'the banner is gone once ready');
  const detail = await getJSON(`/api/models/${id}`);
  assert.equal(detail.analysis.state, 'ready');
  if (detail.progress) t.diagnostic(`ready, and the server still reports progress: ${JSON.stringify(detail.progress)}`);
  assert.deepEqual(detail.classes, reference.classes);
  assert.equal(detail.analysis.n_images, reference.classes.length * N_TEST);
  assert.match(await page.locator('#model-header h1').innerText(), new RegExp(title));
  assert.equal(await page.locator('#delete-model').count(), 1, 'an imported model can be deleted');

  // Every layer button draws its scatter of every analysed image.
  const buttons = page.locator('#layer-buttons button[data-layer]');
  const nButtons = await buttons.count();
  assert.ok(nButtons >= 2, `${nButtons} layer buttons`);
  for (let i = 0; i < nButtons; i++) {
    const b = buttons.nth(i);
    const layer = await b.getAttribute('data-layer');
    await b.click();
    await page.waitForFunction((want) => {
      const gd = document.getElementById('scatter');
      return gd.dataset.layer === want && !document.querySelector('#layer-stats .progress') &&
        document.getElementById('elbow').data;
    }, layer);
    assert.equal(await page.evaluate(imagePoints), detail.analysis.n_images, `layer ${layer}: points`);
  }

  // Its doubt, once calibrated: the histogram and the table, as for a demo model.
  await page.locator('#doubt-section').scrollIntoViewIfNeeded();
  await page.waitForSelector('#doubt-auroc, #doubt-histogram .empty, #doubt-histogram .error', { timeout: 4 * STEP_MS });
  const doubtState = (await getJSON(`/api/models/${id}`)).doubt;
  assert.equal(doubtState?.state, 'ready', `doubt: ${JSON.stringify(doubtState)}`);
  assert.equal(await page.locator('#doubt-auroc').count(), 1, 'the doubt evaluation is shown');

  // A photo of the felines it was not sent: answer, doubt, LIME, its path.
  const predictP = page.waitForResponse((r) => r.url().includes(`/api/models/${id}/predict`) && r.request().method() === 'POST',
    { timeout: 2 * STEP_MS });
  await page.setInputFiles('#file-input', files.photo);
  const prediction = await (await predictP).json();
  await page.waitForSelector('#upload-result [data-predicted]');
  assert.ok(reference.classes.includes(prediction.predicted));
  assert.equal(await page.locator('#upload-result [data-predicted]').getAttribute('data-predicted'), prediction.predicted);
  assert.equal(await page.evaluate(() => document.getElementById('upload-bars').data[0].x.length), reference.classes.length);
  assert.ok(prediction.doubt, 'the reply has a doubt');
  const doubt = await page.locator('#upload-result .doubt-score').getAttribute('data-doubt');
  assert.ok(Math.abs(Number(doubt) - prediction.doubt.score) < 1e-9);
  await page.waitForFunction(() => {
    const img = document.querySelector('#upload-result img.lime-overlay');
    return img && img.complete && img.naturalWidth > 0;
  }, null, { timeout: 2 * STEP_MS });
  assert.equal(await page.evaluate(pathsLines), detail.analysis.n_images + 1);
  assert.equal(await page.evaluate(uploadSegmentAt, 0), 'your image');
  assert.equal(await page.locator('#parcats path.pg-upload').count(), 1, 'its black line');
  // A mistake of its gallery opens with its LIME explanation, as on the demo models.
  const wrong = (await getJSON(`/api/models/${id}/misclassified`)).images;
  if (wrong.length) {
    await page.locator('#gallery').scrollIntoViewIfNeeded();
    await page.waitForSelector('#gallery .gallery-item');
    await page.locator('#gallery .gallery-item').first().click();
    await page.waitForSelector('#mistake-detail .image-panel');
    const opened = await page.locator('#mistake-detail .image-panel').getAttribute('data-image');
    assert.ok(wrong.some((w) => w.id === opened), `${opened} is one of its mistakes`);
    await page.waitForFunction(() => {
      const img = document.querySelector('#mistake-detail img.lime-overlay');
      return img && img.complete && img.naturalWidth > 0;
    }, null, { timeout: 4 * STEP_MS });
    assert.match(await page.locator('#mistake-detail .description').innerText(), /\w/);
    await page.locator('#mistake-detail').scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(ARTIFACTS, 'import-mistake-desktop.png') });
  } else {
    t.diagnostic('the imported model answers every analysed image rightly: no mistake to open');
  }
  // The photos of the other datasets get this model's answers too.
  await page.locator('#outside').scrollIntoViewIfNeeded();
  await page.waitForFunction(() => {
    const cards = document.querySelectorAll('.outside-card');
    return cards.length > 0 && [...cards].every((c) => (c.dataset.predicted || c.querySelector('.error')) && !c.querySelector('.progress'));
  }, null, { timeout: 4 * STEP_MS });
  const outside = await page.$$eval('.outside-card', (cs) => cs.map((c) => c.dataset.predicted || c.querySelector('.error').innerText));
  for (const o of outside) assert.ok(reference.classes.includes(o), `an outside photo answered: ${o}`);
  await shot(page, 'model-desktop');
  assert.deepEqual(errors, []);
  await ctx.close();

  const phone = await browser.newContext(PHONE);
  const p2 = await open(phone, `/model.html?id=${id}`);
  await modelPageReady(p2.page);
  await p2.page.waitForSelector('#delete-model');
  await shot(p2.page, 'model-phone');
  assert.deepEqual(p2.errors, []);
  await phone.close();
});

// --- a model on the server's dataset, from a phone -------------------------------------

test('import on a phone with the server\'s dataset and typed classes; home lists it apart from the demo cards', async (t) => {
  if (skip) { t.skip(skip); return; }
  const title = 'Residual on the felines dataset';
  const id = 'residual-felines-dataset';
  const ctx = await browser.newContext(PHONE);
  const { page, errors } = await open(ctx, '/import.html');
  await page.waitForSelector('#dataset option[value="felines"]', { state: 'attached' });
  await fillForm(page, { model: ONNX, title, id, images: { dataset: 'felines' }, classes: reference.classes.join('\n') });
  await shot(page, 'form-filled-phone');
  const replyP = page.waitForResponse(isImportPost, { timeout: 4 * STEP_MS });
  await page.click('#import-submit');
  const reply = await replyP;
  assert.equal(reply.status(), 201);
  const body = await reply.json();
  imported[id] = { title, body };
  assert.equal(body.report.split, 'dataset');
  assert.deepEqual(body.report.classes.map((c) => c.name), reference.classes);
  const ds = (await getJSON('/api/datasets')).datasets.find((d) => d.name === 'felines');
  assert.equal(body.report.classes.reduce((s, c) => s + c.train, 0), ds.train);
  assert.equal(body.report.classes.reduce((s, c) => s + c.test, 0), ds.test);
  await page.waitForSelector('#import-result:not([hidden]) #report-classes');
  assert.equal(await page.locator('#report-split').getAttribute('data-split'), 'dataset');
  await shot(page, 'report-phone');

  // Home, while it may still be analysed: its card under "Your models" with
  // its state; the demo cards as they were, none of them for an imported model.
  const home = await open(ctx, '/');
  await home.page.waitForSelector(`.own-card[data-model="${id}"]`);
  const state = await home.page.locator(`.own-card[data-model="${id}"]`).getAttribute('data-analysis');
  if (state !== 'ready') {
    assert.equal(await home.page.locator(`.own-card[data-model="${id}"] .badge`).innerText(), state);
    await home.page.locator(`.own-card[data-model="${id}"]`).scrollIntoViewIfNeeded();
    await home.page.waitForFunction(() => [...document.querySelectorAll('#own-cards .cover img')]
      .every((i) => i.complete && i.naturalWidth > 0));
    await shot(home.page, 'home-analysing-phone');
  }
  await home.page.waitForSelector(`.own-card[data-model="${id}"][data-analysis="ready"]`, { timeout: READY_TIMEOUT_S * 1000 });
  const demo = await home.page.$$eval('#cards .dataset-card', (cs) => cs.map((c) => c.dataset.dataset));
  assert.deepEqual(demo.slice().sort(), ['felines', 'paysages', 'transports']);
  const own = await home.page.$$eval('#own-cards .own-card', (cs) => cs.map((c) => c.dataset.model));
  assert.deepEqual(own.sort(), Object.keys(imported).sort());
  assert.equal(await home.page.locator('#cards .own-card').count(), 0);
  // The felines card still opens a demo model.
  const felines = await home.page.locator('#cards .dataset-card[data-dataset="felines"]').getAttribute('href');
  assert.ok(!Object.keys(imported).some((i) => felines.endsWith(`=${i}`)), `felines card: ${felines}`);
  await home.page.locator('#own-cards').scrollIntoViewIfNeeded();
  await home.page.waitForFunction(() => [...document.querySelectorAll('.cover img')].every((i) => i.complete && i.naturalWidth > 0));
  await shot(home.page, 'home-phone');
  const desk = await browser.newContext(DESKTOP);
  const home2 = await open(desk, '/');
  await home2.page.waitForSelector(`.own-card[data-model="${id}"][data-analysis="ready"]`);
  await home2.page.locator('#own-cards').scrollIntoViewIfNeeded();
  await home2.page.waitForFunction(() => [...document.querySelectorAll('.cover img')].every((i) => i.complete && i.naturalWidth > 0));
  await shot(home2.page, 'home-desktop');
  // The menu lists them under "your models".
  await home2.page.click('#menu-button');
  const mine = await home2.page.$$eval('.menu-own .menu-item', (as) => as.map((a) => a.dataset.model));
  assert.deepEqual(mine.sort(), Object.keys(imported).sort());
  await shot(home2.page, 'menu-desktop');
  assert.deepEqual([...errors, ...home.errors, ...home2.errors], []);
  await desk.close();
  await ctx.close();
});

// --- deleting ------------------------------------------------------------------------------

test('delete through the page: asked first, then gone from the home page and the API', async (t) => {
  if (skip) { t.skip(skip); return; }
  const ids = Object.keys(imported);
  assert.equal(ids.length, 2, 'both imports went through');
  for (const [i, id] of ids.entries()) {
    const size = i === 0 ? 'desktop' : 'phone';
    const ctx = await browser.newContext(i === 0 ? DESKTOP : PHONE);
    const { page, errors } = await open(ctx, `/model.html?id=${id}`);
    await page.waitForSelector('#delete-model');
    // Keep it: nothing happens.
    await page.click('#delete-model');
    await page.waitForSelector('#delete-cancel');
    assert.match(await page.locator('.delete-question').innerText(), new RegExp(`Delete “${imported[id].title}”`));
    await page.locator('#model-actions').scrollIntoViewIfNeeded();
    await shot(page, `delete-ask-${size}`);
    await page.click('#delete-cancel');
    await page.waitForSelector('#delete-model');
    assert.ok((await getJSON('/api/models')).models.some((m) => m.id === id), 'kept');
    // Delete it.
    await page.click('#delete-model');
    const delP = page.waitForResponse((r) => r.request().method() === 'DELETE');
    await page.click('#delete-confirm');
    assert.equal((await delP).status(), 204);
    await page.waitForURL((u) => u.pathname === '/');
    await page.waitForSelector('#deleted-note');
    assert.match(await page.locator('#deleted-note').innerText(), new RegExp(`“${imported[id].title}” was deleted`));
    await page.waitForSelector('#own-cards .add-card');
    assert.equal(await page.locator(`.own-card[data-model="${id}"]`).count(), 0);
    await page.locator('#own-cards').scrollIntoViewIfNeeded();
    await page.waitForFunction(() => [...document.querySelectorAll('.cover img')].every((im) => im.complete && im.naturalWidth > 0));
    await shot(page, `deleted-${size}`);
    const { models } = await getJSON('/api/models');
    assert.ok(!models.some((m) => m.id === id), `${id} is gone from GET /api/models`);
    assert.equal((await fetch(`${base}/api/models/${id}`)).status, 404);
    assert.deepEqual(errors, []);
    await ctx.close();
  }
  // None left: the section says so; a demo model cannot be deleted.
  const ctx = await browser.newContext(DESKTOP);
  const { page, errors } = await open(ctx, '/');
  await page.waitForSelector('#own-cards .own-empty');
  assert.deepEqual(errors, []);
  await ctx.close();
  const demo = await fetch(`${base}/api/models/felines`, { method: 'DELETE' });
  assert.equal(demo.status, 403);
  assert.equal((await demo.json()).error.code, 'not_deletable');
  const demoPage = await browser.newContext(DESKTOP);
  const d = await open(demoPage, '/model.html?id=felines');
  await d.page.waitForSelector('#model-header h1');
  assert.equal(await d.page.locator('#delete-model').count(), 0, 'no delete button on a demo model');
  await demoPage.close();
});

// --- a file strata exported, its fields left empty ----------------------------------------

test('a file strata exported: the page says what it carries, picks "From the file", and imports it with the fields left empty', async (t) => {
  if (skip) { t.skip(skip); return; }
  const want = files.exportedModel;
  const id = 'felines-seed-architecture';
  for (const [ctxOpts, size] of [[DESKTOP, 'desktop'], [PHONE, 'phone']]) {
    const ctx = await browser.newContext(ctxOpts);
    const { page, errors } = await open(ctx, '/import.html');
    await page.waitForSelector('#dataset option[value="felines"]', { state: 'attached' });
    const hint = await page.locator('#model-hint').innerText();
    assert.match(hint, /A file exported by strata \(strata export\) carries its classes, normalisation and title: they are used when the fields below are left empty/);
    assert.equal(await page.locator('#title').getAttribute('required'), null, 'the title is not required');
    let posts = 0;
    page.on('request', (r) => { if (r.method() === 'POST' && new URL(r.url()).pathname === '/api/models') posts += 1; });

    // A file that carries nothing: said, the normalisation stays ImageNet's, the title is asked for.
    await page.setInputFiles('#model-file', ONNX);
    await page.waitForSelector('#model-meta:not([hidden])');
    assert.match(await page.locator('#model-meta').innerText(), /carries no title, classes or normalisation of its own/);
    assert.equal(await page.locator('input[name="norm"]:checked').getAttribute('value'), 'imagenet');
    await page.check('input[name="images-from"][value="dataset"]');
    await page.selectOption('#dataset', 'felines');
    await page.click('#import-submit');
    await page.waitForSelector('#import-status[data-state="invalid"]');
    assert.match(await page.locator('#title-error').innerText(), /This file carries no title of its own/);
    assert.equal(posts, 0, 'nothing was sent');
    await page.locator('#title-error').scrollIntoViewIfNeeded();
    await shot(page, `untitled-refused-${size}`);

    // strata's export: its title, classes and normalisation shown, and used.
    await page.setInputFiles('#model-file', files.exported);
    await page.waitForSelector('#model-meta[data-fields="title classes mean std"]');
    const said = await page.locator('#model-meta').innerText();
    assert.ok(said.includes(`the title “${want.title}”`), said);
    assert.ok(said.includes(`4 classes (${want.classes.join(', ')})`), said);
    assert.ok(said.includes(`mean ${want.normalization.mean.join(', ')} and std ${want.normalization.std.join(', ')}`), said);
    assert.equal(await page.locator('#title-error').isHidden(), true, 'the title is no longer asked for');
    assert.equal(await page.locator('#import-status').innerText(), '', '"nothing was sent" goes with the last mark');
    assert.equal(await page.locator('input[name="norm"]:checked').getAttribute('value'), 'file');
    assert.equal(await page.locator('#title').getAttribute('placeholder'), want.title);
    assert.equal(await page.locator('#id-shown').innerText(), `/model.html?id=${id}`);
    assert.match(await page.locator('#classes-preview').innerText(), /The file names its own classes/);
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no sideways scroll');
    await page.locator('#import-form').scrollIntoViewIfNeeded();
    await shot(page, `exported-form-${size}`);

    const replyP = page.waitForResponse(isImportPost, { timeout: 2 * STEP_MS });
    await page.click('#import-submit');
    const reply = await replyP;
    assert.equal(reply.status(), 201);
    assert.equal(posts, 1);
    const body = await reply.json();
    assert.equal(body.id, id);
    assert.deepEqual(body.from_metadata, ['title', 'classes', 'mean', 'std']);
    await page.waitForSelector('#import-result:not([hidden]) #import-from-file');
    assert.equal(await page.locator('#import-from-file').getAttribute('data-fields'), 'title classes mean std');
    assert.match(await page.locator('#import-from-file').innerText(), /From the file's own metadata: title, classes, mean and std\./);
    assert.match(await page.locator('#import-result h2').innerText(), new RegExp(want.title.replace(/[()]/g, '\\$&')));
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no sideways scroll');
    await shot(page, `exported-result-${size}`);
    const m = await getJSON(`/api/models/${id}`);
    assert.equal(m.title, want.title);
    assert.deepEqual(m.classes, want.classes);
    assert.deepEqual(m.normalization, want.normalization);
    assert.equal((await fetch(`${base}/api/models/${id}`, { method: 'DELETE' })).status, 204);
    assert.deepEqual(errors, []);
    await ctx.close();
  }
});
