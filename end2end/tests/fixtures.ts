import { test as base } from '@playwright/test';

export { expect } from '@playwright/test';
export type { APIRequestContext, Browser, Page } from '@playwright/test';

/** A client address of its own for each test, as the app's trusted proxy (loopback, see
 * playwright.config.ts) reports it: the per-client limits (twenty sign-ups an hour) count each
 * test as the separate visitor it stands for, not the whole run as one. */
export function clientAddress(): string {
  const byte = () => 1 + Math.floor(Math.random() * 250);
  return `10.${byte()}.${byte()}.${byte()}`;
}

export const test = base.extend({
  extraHTTPHeaders: async ({}, use) => {
    await use({ 'x-forwarded-for': clientAddress() });
  },
});
