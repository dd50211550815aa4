import { expect, Page, test } from './fixtures';
import { enhanced, mailedLink, PASSWORD, proveAddress, uniqueEmail } from './helpers';

// Mail as a user meets it, through the catcher's inbox: the link mailed at sign-up proves the
// address (the banner goes), and "Forgot password?" mails a link that sets a new password. With
// JavaScript, and without (the forms are plain forms).

async function signUp(page: Page, email: string, javaScript: boolean) {
  await page.goto('/signup');
  if (javaScript) await enhanced(page);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(/\/settings\/billing$/);
}

async function logOut(page: Page) {
  await page.getByRole('button', { name: 'Log out' }).click();
  await expect(page).toHaveURL(/\/login$/);
}

for (const javaScript of [true, false]) {
  test.describe(javaScript ? 'with JavaScript' : 'without JavaScript', () => {
    test.use({ javaScriptEnabled: javaScript });

    test('the sign-up link proves the address, and a reset link sets a new password', async ({
      page,
    }) => {
      const email = uniqueEmail(javaScript ? 'mail-js' : 'mail-nojs');
      await signUp(page, email, javaScript);
      await expect(page.getByTestId('unproven-address')).toContainText(email);
      if (javaScript) {
        await page.screenshot({ path: 'test-results/screens/billing-unproven.png', fullPage: true });
      }
      await proveAddress(page, email);
      await page.goto('/settings/billing');
      await expect(page.getByTestId('unproven-address')).toHaveCount(0);
      await logOut(page);

      await page.getByRole('link', { name: 'Forgot password?' }).click();
      await expect(page).toHaveURL(/\/forgot-password$/);
      if (javaScript) await enhanced(page);
      await page.getByLabel('Email').fill(email);
      await page.getByRole('button', { name: 'Send the link' }).click();
      await expect(page.getByTestId('reset-sent')).toBeVisible();

      const link = await mailedLink(email, 'Reset your Billfold password', '/reset-password');
      await page.goto(link);
      if (javaScript) await enhanced(page);
      await page.getByLabel('New password').fill('a brand new password');
      await page.getByRole('button', { name: 'Set the new password' }).click();
      await expect(page).toHaveURL(/\/settings\/billing$/);
      await expect(page.getByTestId('user-email')).toHaveText(email);

      // The link worked once.
      await page.goto(link);
      await expect(page.getByTestId('reset-link-refused')).toContainText('used already');

      await page.goto('/settings/billing');
      await logOut(page);
      if (javaScript) await enhanced(page);
      await page.getByLabel('Email').fill(email);
      await page.getByLabel('Password').fill('a brand new password');
      await page.getByRole('button', { name: 'Log in' }).click();
      await expect(page).toHaveURL(/\/settings\/billing$/);
    });

    test('a new address takes effect once its link is opened', async ({ page }) => {
      const email = uniqueEmail(javaScript ? 'change-js' : 'change-nojs');
      const newEmail = uniqueEmail(javaScript ? 'changed-js' : 'changed-nojs');
      await signUp(page, email, javaScript);
      await page.getByRole('link', { name: 'Account' }).click();
      await expect(page).toHaveURL(/\/settings\/account$/);
      if (javaScript) await enhanced(page);

      // A wrong password is refused in the form, saying which field.
      await page.getByLabel('New email').fill(newEmail);
      await page.getByLabel('Current password').fill('not the password');
      await page.getByRole('button', { name: 'Send the link' }).click();
      await expect(page.getByText('Your current password is not correct.')).toBeVisible();

      if (javaScript) await enhanced(page);
      await page.getByLabel('New email').fill(newEmail);
      await page.getByLabel('Current password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Send the link' }).click();
      await expect(page.getByTestId('email-change-sent')).toBeVisible();
      await expect(page.getByTestId('account-email')).toHaveText(email);
      if (javaScript) {
        await page.screenshot({ path: 'test-results/screens/account-change-sent.png', fullPage: true });
      }

      const link = await mailedLink(newEmail, 'Confirm your new email address', '/confirm-email-change');
      await page.goto(link);
      await expect(page.getByTestId('email-changed')).toContainText(newEmail);
      await page.goto('/settings/account');
      await expect(page.getByTestId('account-email')).toHaveText(newEmail);
      await expect(page.getByTestId('user-email')).toHaveText(newEmail);
    });
  });
}
