// Identity, on this kernel's paths (identity-suite.ts holds the tests).
import { kernelModes } from '../helpers/kernel-modes.js';
import { identitySuite } from './identity-suite.js';

identitySuite(kernelModes.thisKernel);
