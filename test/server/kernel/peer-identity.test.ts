// Identity, on this kernel's paths (peer-identity-suite.ts holds the tests).
import { kernelModes } from '../../helpers/kernel-modes.js';
import { identitySuite } from './peer-identity-suite.js';

identitySuite(kernelModes.thisKernel);
