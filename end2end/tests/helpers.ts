import { expect, Page } from '@playwright/test';

export const PASSWORD = 'correct horse battery';

export function uniqueEmail(tag: string): string {
  return `${tag}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
}

/** Waits until the WASM bundle has taken over the server-rendered page. */
export async function hydrated(page: Page): Promise<void> {
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
}
