import { expect, test } from './fixtures';
import { enhanced, PASSWORD, uniqueEmail } from './helpers';

test.describe('accounts with JavaScript', () => {
  test('a new user signs up, logs out, logs in and reaches billing', async ({ page }) => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    // A refused log-in is a 4xx the browser reports on the console; anything else is a bug.
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
    });

    const email = uniqueEmail('js');
    await page.goto('/signup');
    await enhanced(page);
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();

    await expect(page).toHaveURL(/\/settings\/billing$/);
    await expect(page.getByRole('heading', { name: 'Billing' })).toBeVisible();
    await expect(page.getByTestId('user-email')).toHaveText(email);

    await enhanced(page);
    await page.getByRole('button', { name: 'Log out' }).click();
    await expect(page).toHaveURL(/\/login$/);

    // Logged out, billing sends us to log in and back again.
    await page.goto('/settings/billing');
    await expect(page).toHaveURL(/\/login\?next=%2Fsettings%2Fbilling$/);
    await enhanced(page);
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect(page.getByRole('alert')).toHaveText('Email or password is incorrect.');

    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect(page).toHaveURL(/\/settings\/billing$/);
    await expect(page.getByTestId('user-email')).toHaveText(email);
    expect(errors).toEqual([]);
  });

  test('bad input is explained next to the field', async ({ page }) => {
    await page.goto('/signup');
    await enhanced(page);
    await page.getByLabel('Email').fill('not-an-email');
    await page.getByLabel('Password').fill('short');
    await page.getByRole('button', { name: 'Create account' }).click();
    await expect(page.locator('#field-email-error')).toContainText('Enter a valid email address');
    await expect(page).toHaveURL(/\/signup/);
  });
});

test.describe('accounts without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('sign up, log out, log in and reach billing as plain HTML forms', async ({ page }) => {
    const email = uniqueEmail('nojs');
    await page.goto('/signup');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    await expect(page).toHaveURL(/\/settings\/billing$/);
    await expect(page.getByTestId('user-email')).toHaveText(email);

    await page.getByRole('button', { name: 'Log out' }).click();
    await expect(page).toHaveURL(/\/login$/);

    await page.goto('/settings/billing');
    await expect(page).toHaveURL(/\/login\?next=%2Fsettings%2Fbilling$/);
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect(page.getByRole('alert')).toHaveText('Email or password is incorrect.');

    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect(page).toHaveURL(/\/settings\/billing$/);
    await expect(page.getByTestId('user-email')).toHaveText(email);
  });

  test('signing up twice says the account exists', async ({ page }) => {
    const email = uniqueEmail('dup');
    await page.goto('/signup');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    await expect(page).toHaveURL(/\/settings\/billing$/);
    await page.getByRole('button', { name: 'Log out' }).click();

    await page.goto('/signup');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    await expect(page.getByRole('alert')).toContainText('An account with this email already exists');
  });
});
