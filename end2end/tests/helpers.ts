import { expect, Page } from '@playwright/test';

export const PASSWORD = 'correct horse battery';

/** The mail catcher's web API (MailDev, started by playwright.config.ts). */
export const INBOX = `http://127.0.0.1:${process.env.E2E_MAIL_WEB_PORT ?? 3459}`;

/** The link to `path` in the newest mail to `email` whose subject has `subject`, once it arrives. */
export async function mailedLink(email: string, subject: string, path: string): Promise<string> {
  let link = '';
  await expect(async () => {
    const res = await fetch(`${INBOX}/email`);
    const mails = (await res.json()) as Array<{
      subject: string;
      text: string;
      to: Array<{ address: string }>;
    }>;
    const mine = mails.filter(
      (m) => m.to.some((t) => t.address === email) && m.subject.includes(subject),
    );
    expect(mine.length).toBeGreaterThan(0);
    const words = mine[mine.length - 1].text.split(/\s+/);
    link = words.find((w) => w.startsWith('http') && w.includes(path)) ?? '';
    expect(link).not.toBe('');
  }).toPass({ timeout: 20_000, intervals: [200, 500, 1000] });
  return link;
}

/** Follows the link mailed at sign-up, proving the address. */
export async function proveAddress(page: Page, email: string): Promise<void> {
  await page.goto(await mailedLink(email, 'Confirm your email address', '/verify-email'));
  await expect(page.getByTestId('email-confirmed')).toContainText(`${email} is confirmed`);
}

export function uniqueEmail(tag: string): string {
  return `${tag}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
}

/** Waits until the page's forms script answers its forms in place. */
export async function enhanced(page: Page): Promise<void> {
  await expect(page.locator('body')).toHaveAttribute('data-enhanced', 'true');
}

/** Signs up a new account; the app lands it on the billing page. */
export async function signUp(page: Page, email: string) {
  await page.goto('/signup');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(/\/settings\/billing$/);
}

/** Starts Starter through the double's Checkout with a card that pays. */
export async function subscribeToStarter(page: Page) {
  await page.getByRole('button', { name: 'Choose Starter' }).click();
  await expect(page).toHaveURL(/\/_stripe-sim\/checkout\//);
  await page.getByLabel('Card number').fill('4242 4242 4242 4242');
  await page.getByLabel('Expiry (MM / YY)').fill('12 / 34');
  await page.getByLabel('CVC').fill('123');
  await page.getByLabel('Cardholder name').fill('Ada Lovelace');
  await page.getByRole('button', { name: /Subscribe|Pay/ }).click();
  await expect(page).toHaveURL(/\/settings\/billing\?from=checkout$/);
  await expect(page.getByTestId('plan-name')).toHaveText('Starter');
}

/** Switches to Pro from the plan card, confirming in the double's portal. */
export async function switchToPro(page: Page, screenshots: boolean) {
  const card = page.getByTestId('switch-option').filter({ hasText: /^Pro/ }); // the card whose title is Pro (others may list projects)
  await expect(card).toHaveCount(1);
  if (screenshots) {
    await page.screenshot({ path: 'test-results/screens/billing-switch-plans.png', fullPage: true });
  }
  await card.getByRole('button', { name: 'Switch to Pro' }).click();
  await expect(page).toHaveURL(/\/_stripe-sim\/portal\/.*\/update\/confirm/);
  await expect(page.getByText('Prorated amount').first()).toBeVisible();
  await expect(page.getByText('Due today').first()).toBeVisible();
  if (screenshots) {
    await page.screenshot({ path: 'test-results/screens/portal-confirm-switch.png', fullPage: true });
  }
  await page.getByRole('button', { name: 'Confirm' }).click();
  await expect(page).toHaveURL(/\/settings\/billing\?from=portal$/);
  await expect(page.getByTestId('plan-name')).toHaveText('Pro');
}
