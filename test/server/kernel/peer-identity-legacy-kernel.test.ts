// Identity, without all three features (an older kernel).
import { kernelModes } from '../../helpers/kernel-modes.js';
import { identitySuite } from './peer-identity-suite.js';

identitySuite(kernelModes.withoutAll);
