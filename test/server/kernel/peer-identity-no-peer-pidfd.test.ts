// Identity, without SO_PEERPIDFD (the pid opened as a pidfd at once).
import { kernelModes } from '../../helpers/kernel-modes.js';
import { identitySuite } from './peer-identity-suite.js';

identitySuite(kernelModes.withoutPeerPidfd);
