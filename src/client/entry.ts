// The guest CLI's entry point (bundled into dist/devapollo-guest.mjs).
import { main } from './main.js';

void main();
