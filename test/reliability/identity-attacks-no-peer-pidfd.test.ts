// Identity attacks, without SO_PEERPIDFD (the pid opened as a pidfd at once).
import { kernelModes } from '../helpers/kernel-modes.js';
import { identityAttacksSuite } from './identity-attacks-suite.js';

identityAttacksSuite(kernelModes.withoutPeerPidfd);
