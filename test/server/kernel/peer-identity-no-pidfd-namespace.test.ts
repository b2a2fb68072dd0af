// Identity, without PIDFD_GET_PID_NAMESPACE (/proc, checked by the pidfd).
import { kernelModes } from '../../helpers/kernel-modes.js';
import { identitySuite } from './peer-identity-suite.js';

identitySuite(kernelModes.withoutPidfdNamespace);
