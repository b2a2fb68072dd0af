// Identity attacks, on this kernel's paths (identity-attacks-suite.ts holds the tests).
import { kernelModes } from '../helpers/kernel-modes.js';
import { identityAttacksSuite } from './identity-attacks-suite.js';

identityAttacksSuite(kernelModes.thisKernel);
