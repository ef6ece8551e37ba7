// Unit tests of the lab extension (labextension/test): API modules with a stubbed fetch, the
// poller's timing with fake timers, the models' signals, pure helpers. No server, no browser.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['labextension/test/**/*.spec.ts'],
    // DOM-free by default; a spec that needs one says `@vitest-environment jsdom`
    environment: 'node'
  }
});
