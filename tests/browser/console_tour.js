// Drives Debian's headless Chromium through the twoway console with an admin client
// certificate (Playwright's clientCertificates): loads every page (a screenshot of each into
// SHOTS), revokes VICTIM through the certificate page's form (accepting the confirmation),
// creates a token for TOKEN_NAME, and prints one JSON line: what the pages showed afterwards
// and every console error or CSP violation the browser reported.
// Environment: URL, CERT, KEY (PEM), SHOTS (a directory), VICTIM (serial), TOKEN_NAME.
'use strict';
const { chromium } = require('playwright-core');
const path = require('path');

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

async function main() {
  const url = env('URL');
  const shots = env('SHOTS');
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const out = { pages: {}, problems: [] };
  try {
    // The server certificate is from the test CA, which Chromium does not know; what is under
    // test here is the client certificate and the pages.
    const context = await browser.newContext({
      ignoreHTTPSErrors: true,
      viewport: { width: 1100, height: 760 },
      clientCertificates: [{ origin: url, certPath: env('CERT'), keyPath: env('KEY') }],
    });
    const page = await context.newPage();
    page.on('console', (m) => { if (m.type() === 'error') out.problems.push(m.text()); });
    page.on('pageerror', (e) => out.problems.push(String(e)));
    page.on('dialog', (d) => d.accept());
    const pages = { overview: '/console/', inventory: '/console/certs', tokens: '/console/tokens',
      pending: '/console/pending', audit: '/console/audit' };
    for (const [name, p] of Object.entries(pages)) {
      const resp = await page.goto(url + p);
      out.pages[name] = { status: resp.status(), title: await page.title() };
      await page.screenshot({ path: path.join(shots, `console-${name}.png`), fullPage: true });
    }
    // Revoke through the form: reason, confirmation box, the script's confirm() dialog.
    const victim = env('VICTIM');
    await page.goto(`${url}/console/certs/${victim}`);
    await page.screenshot({ path: path.join(shots, 'console-certificate.png'), fullPage: true });
    await page.selectOption('select[name=reason]', 'keyCompromise');
    await page.check('input[name=confirm]');
    const [posted] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/revoke')), page.click('#revoke')]);
    out.revoke_status = posted.status();
    if (posted.status() !== 303) console.error('revoke answered', posted.status(), await posted.text().catch(() => ''));
    await page.waitForURL(`${url}/console/certs/${victim}`);
    await page.waitForLoadState('load');
    out.ocsp_after_revoke = (await page.textContent('#ocsp', { timeout: 10000 }).catch(
      async () => 'missing: ' + (await page.textContent('body')))).trim();
    await page.screenshot({ path: path.join(shots, 'console-revoked.png'), fullPage: true });
    // A token, shown once with the enrollment command and its QR code.
    await page.goto(`${url}/console/tokens`);
    await page.fill('input[name=name]', env('TOKEN_NAME'));
    await Promise.all([page.waitForLoadState('load'), page.click('#create')]);
    await page.waitForSelector('#command');
    out.command = (await page.textContent('#command')).trim();
    out.qr = await page.locator('svg.qr').count();
    await page.screenshot({ path: path.join(shots, 'console-token.png'), fullPage: true });
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => { console.error(e); process.exit(1); });
