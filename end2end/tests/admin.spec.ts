import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { expect, Page, test } from './fixtures';
import { enhanced, PASSWORD, proveAddress, uniqueEmail } from './helpers';

// /admin/billing, the operators' event inbox. The operator signs up like anyone, and is then
// granted on the server with `billfold admin add`, on the database playwright.config.ts gives
// the app; anyone else gets the page any unknown address gets. The page
// is rendered on the server and needs no JavaScript: its filters are a GET form and each
// replay a plain form post, which must work the same with JavaScript on.

const ADMIN = 'ops@billfold.test';

/** Signs in as the operator: signs up the first time, logs in after that. */
async function signInAsAdmin(page: Page, javaScript: boolean) {
  await page.goto('/signup');
  if (javaScript) await enhanced(page);
  await page.getByLabel('Email').fill(ADMIN);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  const exists = page.getByRole('alert').filter({ hasText: 'already exists' });
  await expect(page.getByTestId('user-email').or(exists)).toBeVisible();
  if (!(await exists.isVisible())) {
    // Only a proven address is granted: the operator follows the link mailed at sign-up.
    await proveAddress(page, ADMIN);
    await page.goto('/settings/billing');
  } else {
    await page.goto('/login');
    if (javaScript) await enhanced(page);
    await page.getByLabel('Email').fill(ADMIN);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
  }
  await expect(page).toHaveURL(/\/settings\/billing$/);
  grantOperator(ADMIN);
}

/** `billfold admin add EMAIL`, run as an operator would on the server. */
function grantOperator(email: string) {
  const root = path.resolve(__dirname, '..', '..');
  execFileSync('target/debug/billfold', ['admin', 'add', email], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: 'sqlite://target/e2e/billfold.db?mode=rwc',
      STRIPE_MODE: 'simulated',
      STRIPE_SIM_STATE: 'target/e2e/cli-stripe-sim.json',
      LOG_LEVEL: 'warn',
    },
    stdio: 'pipe',
  });
}

/** Reloads until `check` passes: events arrive by webhook, a moment after what sent them. */
async function eventually(page: Page, check: () => Promise<void>) {
  await expect(async () => {
    await page.reload();
    await check();
  }).toPass({ timeout: 20_000, intervals: [250, 500, 1000] });
}

/** Opens the page and waits for the `customer.created` of the operator's own sign-up. */
async function openInbox(page: Page) {
  await page.goto('/admin/billing');
  await expect(page.getByRole('heading', { name: 'Billing operations' })).toBeVisible();
  await expect(page.getByTestId('user-email')).toHaveText(ADMIN);
  await eventually(page, async () => {
    await expect(
      page.getByTestId('event-row').filter({ hasText: 'customer.created' }).first(),
    ).toBeVisible();
  });
}

/** Replays the first event listed and checks the page comes back saying what became of it. */
async function replayFirst(page: Page) {
  const row = page.getByTestId('event-row').first();
  const id = await row.getAttribute('data-event-id');
  expect(id).toMatch(/^evt_/);
  await row.getByRole('button', { name: 'Replay' }).click();
  await expect(page).toHaveURL(new RegExp(`[?&]replayed=${id}&result=[a-z_]+$`));
  await expect(page.getByTestId('replay-flash')).toHaveText(
    new RegExp(`^Replayed ${id}: (applied|duplicate|stale|ignored)\\.$`),
  );
  return id as string;
}

test.describe('the operators page without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('the operator filters events, reads a payload and replays one as plain forms', async ({
    page,
  }) => {
    await signInAsAdmin(page, false);
    await openInbox(page);
    await expect(page.getByTestId('reconciler')).toBeVisible();
    await expect(page.getByTestId('drift')).toBeVisible();

    // Narrow to one type: every event listed is of it.
    await page.getByLabel('Type').fill('customer.created');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect(page).toHaveURL(/\/admin\/billing\?outcome=&type=customer\.created&since=$/);
    await expect(page.getByTestId('event-row').first()).toBeVisible();
    for (const type of await page.getByTestId('event-type').allTextContents()) {
      expect(type).toBe('customer.created');
    }

    // The payload unfolds, pretty-printed.
    const row = page.getByTestId('event-row').first();
    const id = await row.getAttribute('data-event-id');
    await expect(row.getByTestId('event-payload')).toBeHidden();
    await row.locator('summary').click();
    await expect(row.getByTestId('event-payload')).toBeVisible();
    await expect(row.getByTestId('event-payload')).toContainText(`"id": "${id}"`);
    await expect(row.getByTestId('event-payload')).toContainText('"type": "customer.created"');

    // Replay: back to the same filters, with what became of it.
    expect(await replayFirst(page)).toBe(id);
    await expect(page).toHaveURL(/[?&]type=customer\.created&/);
    await expect(page.getByLabel('Type')).toHaveValue('customer.created');

    // A time that does not parse is explained.
    await page.getByLabel('Received since').fill('yesterday');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect(page.getByRole('alert')).toContainText('Received since:');
    await expect(page.getByTestId('event-row')).toHaveCount(0);
  });
});

test.describe('the operators page with JavaScript', () => {
  test('the operator filters by outcome and replays an event', async ({ page }) => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
    });

    await signInAsAdmin(page, true);
    await openInbox(page);
    await enhanced(page);

    await page.getByLabel('Outcome').selectOption('ignored');
    await page.getByLabel('Received since').fill('1d');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect(page).toHaveURL(/[?&]outcome=ignored&/);
    await expect(page.getByTestId('event-row').first()).toBeVisible();
    for (const outcome of await page.getByTestId('event-outcome').allTextContents()) {
      expect(outcome).toBe('ignored');
    }
    await enhanced(page);
    await replayFirst(page);
    await expect(page.getByLabel('Outcome')).toHaveValue('ignored');

    // Everything again, with a payload open, for the README.
    await page.getByRole('link', { name: 'Clear' }).click();
    await expect(page).toHaveURL(/\/admin\/billing$/);
    await enhanced(page);
    await replayFirst(page);
    await page.getByTestId('event-row').first().locator('summary').click();
    await page.screenshot({ path: 'test-results/screens/admin-billing.png', fullPage: true });
    expect(errors).toEqual([]);
  });

  test('anyone else gets the not-found page, signed in or not', async ({ page }) => {
    const visitor = await page.goto('/admin/billing');
    expect(visitor?.status()).toBe(404);
    await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
    await expect(page).toHaveTitle('Page not found · Billfold');

    const email = uniqueEmail('not-an-operator');
    await page.goto('/signup');
    await enhanced(page);
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    await expect(page).toHaveURL(/\/settings\/billing$/);

    for (const path of ['/admin/billing', '/admin/billing?outcome=failed']) {
      const res = await page.goto(path);
      expect(res?.status()).toBe(404);
      await expect(page.getByRole('heading', { name: 'Page not found' })).toBeVisible();
      await expect(page.getByText('Billing operations')).toHaveCount(0);
    }

    // The replay, posted by this user from the same site: not found either.
    const replay = await page.request.post('/admin/billing/replay', {
      form: { event_id: 'evt_anything' },
      headers: { Origin: new URL(page.url()).origin },
    });
    expect(replay.status()).toBe(404);
  });
});
