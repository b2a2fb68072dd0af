// Identity attacks, without PIDFD_GET_PID_NAMESPACE (/proc, checked by the pidfd).
import { kernelModes } from '../helpers/kernel-modes.js';
import { identityAttacksSuite } from './identity-attacks-suite.js';

identityAttacksSuite(kernelModes.withoutPidfdNamespace);
