#!/usr/bin/env node
require('../dist/devapollo-guest.cjs');
