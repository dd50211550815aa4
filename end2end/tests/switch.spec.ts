import { APIRequestContext, expect, test } from './fixtures';
import { enhanced, signUp, subscribeToStarter, switchToPro, uniqueEmail } from './helpers';

// Switching plans from the page's plan card straight into Stripe's confirmation (the double's
// portal), with and without JavaScript; a dunning banner that escalates; and no console errors.

const SIM_KEY = { Authorization: 'Bearer sk_test_end_to_end' };

async function customerId(request: APIRequestContext, email: string): Promise<string> {
  const res = await request.get(`/_stripe-sim/v1/customers?email=${encodeURIComponent(email)}`, {
    headers: SIM_KEY,
  });
  const body = await res.json();
  return body.data[0].id;
}

test('switch Starter to Pro from the plan card, confirm in the portal, land back on Pro', async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await signUp(page, uniqueEmail('switch'));
  await enhanced(page);
  await subscribeToStarter(page);
  await enhanced(page);
  await switchToPro(page, true);
  expect(errors).toEqual([]);
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('the Switch to button is a plain form into the confirmation', async ({ page }) => {
    await signUp(page, uniqueEmail('switch-nojs'));
    await subscribeToStarter(page);
    await switchToPro(page, false);
  });
});

test('the dunning banner counts the tries and escalates', async ({ page, request }) => {
  const email = uniqueEmail('dunning');
  await signUp(page, email);
  await enhanced(page);
  await subscribeToStarter(page);
  const customer = await customerId(request, email);
  // A card that fails when charged becomes the subscription's.
  const pm = await request.post('/_stripe-sim/v1/payment_methods/pm_card_chargeCustomerFail/attach', {
    headers: SIM_KEY,
    form: { customer },
  });
  expect(pm.ok()).toBeTruthy();
  const subs = await (
    await request.get(`/_stripe-sim/v1/subscriptions?customer=${customer}`, { headers: SIM_KEY })
  ).json();
  const updated = await request.post(`/_stripe-sim/v1/subscriptions/${subs.data[0].id}`, {
    headers: SIM_KEY,
    form: { default_payment_method: (await pm.json()).id },
  });
  expect(updated.ok()).toBeTruthy();
  // The renewal fails, then two retries fail.
  for (const days of ['32', '3', '5']) {
    const advanced = await request.post(`/_stripe-sim/_admin/customers/${customer}/advance`, {
      headers: SIM_KEY,
      form: { days },
    });
    expect(advanced.ok()).toBeTruthy();
  }
  await expect(async () => {
    await page.goto('/settings/billing');
    await expect(page.getByTestId('dunning-attempts')).toContainText('3 times');
  }).toPass({ timeout: 20_000, intervals: [250, 500, 1000] });
  await expect(page.getByTestId('dunning-banner')).toHaveAttribute('data-severity', 'warning');
  await expect(page.getByTestId('dunning-attempts')).toContainText('Next try:');
  await page.screenshot({ path: 'test-results/screens/billing-dunning.png', fullPage: true });
});

test('no page logs a console error, and /favicon.ico is there', async ({ page, request }) => {
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`${page.url()}: ${m.text()}`);
  });
  for (const path of ['/', '/login', '/signup']) {
    await page.goto(path);
    await enhanced(page);
  }
  await signUp(page, uniqueEmail('console'));
  for (const path of ['/settings/billing', '/app']) {
    await page.goto(path);
  }
  expect(errors).toEqual([]);
  const icon = await request.get('/favicon.ico');
  expect(icon.status()).toBe(200);
});
