#!/usr/bin/env node
import '../dist/devapollo-guest.mjs';
