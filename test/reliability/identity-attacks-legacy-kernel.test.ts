// Identity attacks, without all three features (an older kernel).
import { kernelModes } from '../helpers/kernel-modes.js';
import { identityAttacksSuite } from './identity-attacks-suite.js';

identityAttacksSuite(kernelModes.withoutAll);
