import { defineConfig } from '@playwright/test';

// The app under test: the debug build from `cargo leptos build` (with the Stripe test double),
// in simulated mode, on its own port and a fresh SQLite database, started and stopped by
// Playwright.
const PORT = Number(process.env.E2E_PORT ?? 3457);
const BASE_URL = `http://127.0.0.1:${PORT}`;
// The mail catcher (MailDev) the app sends to; the tests read its inbox (tests/helpers.ts).
const SMTP_PORT = Number(process.env.E2E_SMTP_PORT ?? 3458);
const MAIL_WEB_PORT = Number(process.env.E2E_MAIL_WEB_PORT ?? 3459);

export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  outputDir: 'test-results',
  use: {
    baseURL: BASE_URL,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    },
  },
  webServer: [
    {
      cwd: '..',
      command: `exec node_modules/.bin/maildev --smtp ${SMTP_PORT} --web ${MAIL_WEB_PORT} --ip 127.0.0.1 --silent`,
      url: `http://127.0.0.1:${MAIL_WEB_PORT}/email`,
      reuseExistingServer: false,
      timeout: 30_000,
    },
    {
      cwd: '..',
      command:
        'rm -rf target/e2e && mkdir -p target/e2e && exec target/debug/billfold serve',
      url: `${BASE_URL}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: 'pipe',
      stderr: 'pipe',
      env: {
        APP_URL: BASE_URL,
        BIND_ADDR: `127.0.0.1:${PORT}`,
        DATABASE_URL: 'sqlite://target/e2e/billfold.db?mode=rwc',
        LEPTOS_SITE_ROOT: 'target/site',
        STRIPE_MODE: 'simulated',
        LOG_LEVEL: 'warn',
        SMTP_URL: `smtp://127.0.0.1:${SMTP_PORT}`,
        MAIL_FROM: 'Billfold <billing@billfold.test>',
        // The browser reaches the app from loopback; each test names its own client address
        // (tests/fixtures.ts), as a proxy would, so per-client limits count tests apart.
        TRUSTED_PROXIES: '127.0.0.1/32',
        TRUSTED_PROXY_HEADER: 'x-forwarded-for',
      },
    },
  ],
});
