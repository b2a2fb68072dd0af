// Identity, without all three features (an older kernel).
import { kernelModes } from '../helpers/kernel-modes.js';
import { identitySuite } from './identity-suite.js';

identitySuite(kernelModes.withoutAll);
