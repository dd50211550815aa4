import { Browser, clientAddress, expect, Page, test } from './fixtures';
import { enhanced, mailedLink, proveAddress, signUp, uniqueEmail } from './helpers';

// A team as its people meet it: the owner creates an organisation and invites someone; the
// invited address accepts from the mail catcher's inbox, lands in the team as a member, and
// sees the plan with whom to ask instead of billing buttons. With JavaScript, and without.

async function newPage(browser: Browser, javaScript: boolean): Promise<Page> {
  const context = await browser.newContext({
    javaScriptEnabled: javaScript,
    extraHTTPHeaders: { 'x-forwarded-for': clientAddress() },
  });
  return context.newPage();
}

for (const javaScript of [true, false]) {
  test.describe(javaScript ? 'with JavaScript' : 'without JavaScript', () => {
    test('create an organisation, invite, accept from the mail, members see whom to ask', async ({
      browser,
    }) => {
      const owner = await newPage(browser, javaScript);
      const ownerEmail = uniqueEmail(javaScript ? 'org-owner-js' : 'org-owner-nojs');
      await signUp(owner, ownerEmail);
      await proveAddress(owner, ownerEmail);

      await owner.goto('/settings/organization');
      if (javaScript) await enhanced(owner);
      await owner.getByLabel('Organisation name').fill('Acme Ltd');
      await owner.getByRole('button', { name: 'Create organisation' }).click();
      await expect(owner.getByTestId('org-name')).toHaveText('Acme Ltd');
      await expect(owner.getByTestId('current-org')).toHaveText('Acme Ltd');

      const memberEmail = uniqueEmail(javaScript ? 'org-member-js' : 'org-member-nojs');
      if (javaScript) await enhanced(owner);
      await owner.getByLabel('Email to invite').fill(memberEmail);
      await owner.getByRole('button', { name: 'Send the invitation' }).click();
      await expect(owner.getByTestId('invitation-sent')).toBeVisible();
      await expect(owner.getByTestId('pending-invitation')).toContainText(memberEmail);
      if (javaScript) {
        await owner.screenshot({ path: 'test-results/screens/organization-invited.png', fullPage: true });
      }

      const member = await newPage(browser, javaScript);
      await signUp(member, memberEmail);
      const link = await mailedLink(memberEmail, 'Join Acme Ltd', '/accept-invitation');
      await member.goto(link);
      await expect(member.getByTestId('invitation-offer')).toContainText('Acme Ltd');
      if (javaScript) await enhanced(member);
      await member.getByRole('button', { name: 'Accept the invitation' }).click();
      await expect(member).toHaveURL(/\/settings\/organization$/);
      await expect(member.getByTestId('org-name')).toHaveText('Acme Ltd');
      await expect(member.getByTestId('org-role')).toContainText('Member');
      await expect(member.getByTestId('seats-used')).toHaveText('2 members');

      await member.goto('/settings/billing');
      await expect(member.getByTestId('billing-member-notice')).toContainText(ownerEmail);
      await expect(member.getByRole('button', { name: 'Manage Billing' })).toHaveCount(0);
      if (javaScript) {
        await member.screenshot({ path: 'test-results/screens/billing-member.png', fullPage: true });
      }
      // Back in the personal organisation, the member manages their own billing again.
      await member.goto('/settings/organization');
      if (javaScript) await enhanced(member);
      await member.getByRole('button', { name: 'Switch to Personal' }).click();
      await expect(member.getByTestId('org-name')).toHaveText('Personal');
      await member.goto('/settings/billing');
      await expect(member.getByTestId('billing-member-notice')).toHaveCount(0);
      // The header's switcher (a plain <details> with a form per organisation) goes back to
      // the team and stays on the page.
      await expect(member.getByTestId('current-org')).toHaveText('Personal');
      await member.getByTestId('current-org').click();
      await member.getByTestId('switch-org').filter({ hasText: 'Acme Ltd' }).click();
      await expect(member).toHaveURL(/\/settings\/billing$/);
      await expect(member.getByTestId('current-org')).toHaveText('Acme Ltd');
      await expect(member.getByTestId('billing-member-notice')).toContainText(ownerEmail);
    });
  });
}
