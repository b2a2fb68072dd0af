// Identity attacks, without NS_GET_ID (inode numbers, pinned).
import { kernelModes } from '../helpers/kernel-modes.js';
import { identityAttacksSuite } from './identity-attacks-suite.js';

identityAttacksSuite(kernelModes.withoutNamespaceIds);
