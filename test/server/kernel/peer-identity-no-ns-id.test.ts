// Identity, without NS_GET_ID (inode numbers, pinned).
import { kernelModes } from '../../helpers/kernel-modes.js';
import { identitySuite } from './peer-identity-suite.js';

identitySuite(kernelModes.withoutNamespaceIds);
