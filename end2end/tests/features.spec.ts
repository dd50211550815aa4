import { expect, test } from './fixtures';
import { enhanced, signUp, subscribeToStarter, switchToPro, uniqueEmail } from './helpers';

// `/app`: a feature by entitlement (the CSV export) and a limit (projects), as a user meets them:
// refused without a plan, capped on Starter with the plans that allow more named in place, and
// the export opening on Pro. The project form works without JavaScript too.

test('projects are capped by the plan and the export opens on Pro', async ({ page }) => {
  await signUp(page, uniqueEmail('features'));
  await page.goto('/app');
  await enhanced(page);
  await expect(page.getByTestId('export')).toHaveAttribute('data-included', 'false');
  await page.getByLabel('Project name').fill('Website');
  await page.getByRole('button', { name: 'Add project' }).click();
  await expect(page.getByTestId('project-error')).toContainText('Projects need an active plan');

  await page.goto('/settings/billing');
  await enhanced(page);
  await subscribeToStarter(page);
  await page.goto('/app');
  await expect(page.getByTestId('export-locked')).toContainText(
    'Export to CSV is included in Pro and Team.',
  );
  for (const name of ['Website', 'Blog', 'Shop']) {
    await enhanced(page);
    await page.getByLabel('Project name').fill(name);
    await page.getByRole('button', { name: 'Add project' }).click();
    await expect(page.getByTestId('project').filter({ hasText: name })).toHaveCount(1);
  }
  await expect(page.getByTestId('projects-used')).toHaveText('3 of 3 used');
  await enhanced(page);
  await page.getByLabel('Project name').fill('Fourth');
  await page.getByRole('button', { name: 'Add project' }).click();
  await expect(page.getByTestId('project-error')).toContainText(
    'Your plan allows 3 projects. Pro (20) and Team (no limit) allow more.',
  );
  await page.screenshot({ path: 'test-results/screens/app-starter-limit.png', fullPage: true });

  await page.goto('/settings/billing');
  await enhanced(page);
  await switchToPro(page, false);
  await expect(async () => {
    await page.goto('/app');
    await expect(page.getByTestId('export')).toHaveAttribute('data-included', 'true', {
      timeout: 500,
    });
  }).toPass({ timeout: 20_000, intervals: [250, 500, 1000] });
  await expect(page.getByTestId('projects-used')).toHaveText('3 of 20 used');
  const download = page.waitForEvent('download');
  await page.getByRole('link', { name: 'Download invoices.csv' }).click();
  const csv = await download;
  expect(csv.suggestedFilename()).toBe('invoices.csv');
  await page.screenshot({ path: 'test-results/screens/app-pro.png', fullPage: true });
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('the project form posts and shows the refusal', async ({ page }) => {
    await page.goto('/signup');
    await page.getByLabel('Email').fill(uniqueEmail('features-nojs'));
    await page.getByLabel('Password').fill('correct horse battery');
    await page.getByRole('button', { name: 'Create account' }).click();
    await expect(page).toHaveURL(/\/settings\/billing$/);
    await page.goto('/app');
    await page.getByLabel('Project name').fill('Website');
    await page.getByRole('button', { name: 'Add project' }).click();
    await expect(page).toHaveURL(/\/app/);
    await expect(page.getByTestId('project-error')).toContainText(
      'Your plan allows no more projects.',
    );
  });
});
