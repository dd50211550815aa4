import { APIRequestContext, expect, Page, test } from './fixtures';
import { enhanced, PASSWORD, uniqueEmail } from './helpers';

// The whole user story against the Stripe test double mounted in the app (simulated mode).
// Webhooks arrive asynchronously; where the page depends on one, the test reloads until the
// page shows it, as a user would.

const SIM_KEY = { Authorization: 'Bearer sk_test_end_to_end' };

async function signUp(page: Page, email: string) {
  await page.goto('/signup');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(/\/settings\/billing$/);
}

async function payWithCard(page: Page, number: string, submit: string | RegExp) {
  await page.getByLabel('Card number').fill(number);
  await page.getByLabel('Expiry (MM / YY)').fill('12 / 34');
  await page.getByLabel('CVC').fill('123');
  await page.getByLabel('Cardholder name').fill('Ada Lovelace');
  await page.getByRole('button', { name: submit }).click();
}

async function customerId(request: APIRequestContext, email: string): Promise<string> {
  const res = await request.get(`/_stripe-sim/v1/customers?email=${encodeURIComponent(email)}`, {
    headers: SIM_KEY,
  });
  expect(res.ok()).toBeTruthy();
  const body = await res.json();
  expect(body.data.length).toBe(1);
  return body.data[0].id;
}

/** Reloads until `check` passes: the page catches up once the webhook has landed. */
async function eventually(page: Page, check: () => Promise<void>) {
  await expect(async () => {
    await page.reload();
    await check();
  }).toPass({ timeout: 20_000, intervals: [250, 500, 1000] });
}

test('trial through Checkout, cancel and resume in the portal, a new card, a failed renewal fixed', async ({
  page,
  request,
}) => {
  const email = uniqueEmail('billing');
  await signUp(page, email);
  await expect(page.getByTestId('subscription-card')).toContainText('No active subscription');
  await page.screenshot({ path: 'test-results/screens/billing-no-subscription.png', fullPage: true });

  // Choose Pro: Stripe Checkout, a 14-day trial, back to the page.
  await enhanced(page);
  await page.getByRole('button', { name: 'Choose Pro' }).first().click();
  await expect(page).toHaveURL(/\/_stripe-sim\/checkout\//);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Pro');
  await page.screenshot({ path: 'test-results/screens/checkout.png', fullPage: true });
  await payWithCard(page, '4242 4242 4242 4242', 'Start trial');
  await expect(page).toHaveURL(/\/settings\/billing\?from=checkout$/);
  await expect(page.getByTestId('status-badge')).toHaveText('Free Trial');
  await expect(page.getByTestId('plan-name')).toHaveText('Pro');
  await expect(page.getByTestId('plan-next')).toContainText('Trial ends on');
  await expect(page.getByTestId('card-on-file')).toContainText('•••• 4242');
  await page.screenshot({ path: 'test-results/screens/billing-trial.png', fullPage: true });

  // Manage Billing → the portal → cancel at period end → back: "Cancels on".
  await enhanced(page);
  await page.getByRole('button', { name: 'Manage Billing' }).click();
  await expect(page).toHaveURL(/\/_stripe-sim\/portal\//);
  await page.screenshot({ path: 'test-results/screens/portal.png', fullPage: true });
  await page.getByRole('link', { name: 'Cancel plan' }).click();
  await page.getByRole('button', { name: 'Cancel plan' }).click();
  await page.getByRole('link', { name: /Return to/ }).first().click();
  await expect(page).toHaveURL(/\/settings\/billing\?from=portal$/);
  await expect(page.getByTestId('plan-next')).toContainText('Cancels on');
  await page.screenshot({ path: 'test-results/screens/billing-cancelling.png', fullPage: true });

  // Resume through the portal.
  await enhanced(page);
  await page.getByRole('button', { name: 'Resume plan' }).click();
  await page.getByRole('button', { name: 'Renew plan' }).click();
  await page.getByRole('link', { name: /Return to/ }).first().click();
  await expect(page.getByTestId('plan-next')).toContainText('Trial ends on');

  // A card that will fail at renewal, through the payment-method deep link.
  await enhanced(page);
  await page.getByRole('button', { name: 'Update payment method' }).click();
  await expect(page.getByRole('heading', { name: 'Update payment method' })).toBeVisible();
  await payWithCard(page, '4000 0000 0000 0341', 'Save card');
  await expect(page).toHaveURL(/\/settings\/billing\?from=portal$/);
  await eventually(page, async () => {
    await expect(page.getByTestId('card-on-file')).toContainText('•••• 0341');
  });

  // The trial ends (test clock), the charge fails: the banner, and the way to fix it.
  const customer = await customerId(request, email);
  const advanced = await request.post(`/_stripe-sim/_admin/customers/${customer}/advance`, {
    headers: SIM_KEY,
    form: { days: '15' },
  });
  expect(advanced.ok()).toBeTruthy();
  await eventually(page, async () => {
    await expect(page.getByTestId('dunning-banner')).toContainText('Your last payment failed');
    await expect(page.getByTestId('status-badge')).toHaveText('Past due');
    await expect(page.getByRole('link', { name: 'View the open invoice' })).toBeVisible();
  });
  await page.screenshot({ path: 'test-results/screens/billing-payment-failed.png', fullPage: true });

  await enhanced(page);
  await page.getByTestId('dunning-banner').getByRole('button', { name: 'Update payment method' }).click();
  await payWithCard(page, '4242 4242 4242 4242', 'Save card');
  await expect(page).toHaveURL(/\/settings\/billing\?from=portal$/);
  await eventually(page, async () => {
    await expect(page.getByTestId('dunning-banner')).toHaveCount(0);
    await expect(page.getByTestId('status-badge')).toHaveText('Active');
    await expect(page.getByTestId('invoice-row').first()).toContainText('$29.00');
  });
  await expect(page.getByTestId('plan-next')).toContainText('Renews on');
  await expect(page.getByTestId('invoice-row').first()).toContainText(/paid/i);
  await page.screenshot({ path: 'test-results/screens/billing-active.png', fullPage: true });
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('Manage Billing is a plain form that lands in the portal and comes back', async ({ page }) => {
    const email = uniqueEmail('nojs-billing');
    await signUp(page, email);
    await page.getByRole('button', { name: 'Choose Starter' }).first().click();
    await expect(page).toHaveURL(/\/_stripe-sim\/checkout\//);
    await payWithCard(page, '4242424242424242', 'Subscribe');
    await expect(page).toHaveURL(/\/settings\/billing\?from=checkout$/);
    await expect(page.getByTestId('status-badge')).toHaveText('Active');

    await page.getByRole('button', { name: 'Manage Billing' }).click();
    await expect(page).toHaveURL(/\/_stripe-sim\/portal\//);
    await page.getByRole('link', { name: /Return to/ }).first().click();
    await expect(page).toHaveURL(/\/settings\/billing\?from=portal$/);
    await expect(page.getByTestId('plan-next')).toContainText('Renews on');
  });

  test('a declined card stays on Checkout with the reason', async ({ page }) => {
    await signUp(page, uniqueEmail('declined'));
    await page.getByRole('button', { name: 'Choose Team' }).first().click();
    await payWithCard(page, '4000000000009995', 'Subscribe');
    await expect(page.getByRole('alert')).toContainText(/insufficient funds|declined/i);
    await expect(page).toHaveURL(/\/_stripe-sim\/checkout\//);
  });
});

test('a button says what it is doing, stays disabled while out, and shows a refusal in place', async ({ page }) => {
  const email = uniqueEmail('busy');
  await signUp(page, email);
  await enhanced(page);
  const scripts: string[] = [];
  page.on('request', (r) => {
    if (r.resourceType() === 'script' || /\.wasm($|\?)/.test(r.url())) scripts.push(r.url());
  });
  await page.reload();
  await enhanced(page);
  expect(scripts, 'the page loads no script or WASM file').toEqual([]);

  // Checkout's answer held back (then refused): the button says "Opening…" and cannot be
  // clicked again; the refusal shows under it and the page stays.
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  await page.route('**/api/billing/checkout', async (route) => {
    await held;
    await route.fulfill({
      status: 429,
      contentType: 'application/json',
      body: JSON.stringify({ RateLimited: { message: 'Too many attempts for now.', retry_after_secs: 60 } }),
    });
  });
  const button = page.getByRole('button', { name: 'Choose Starter' }).first();
  await button.click();
  await expect(button).toBeDisabled();
  await expect(button).toHaveText('Opening…');
  release();
  await expect(button).toBeEnabled();
  await expect(button).not.toHaveText('Opening…');
  await expect(page.getByRole('alert').filter({ hasText: 'Too many attempts for now.' })).toBeVisible();
  await expect(page).toHaveURL(/\/settings\/billing$/);
});
