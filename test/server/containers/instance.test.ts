// Whether requests may still reach a container instance: its init's pidfd is polled at
// most once per turn of the event loop, and a dead init is refused from the next turn
// on, whether or not an exit watcher has reported it yet.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, type TestContext, test } from 'node:test';
import { Container, currentTurn, Instance } from '../../../dist/server/containers/container.js';
import { newRecord } from '../../../dist/server/containers/record-rules.js';
import { closeFd, openPidfd, pidfdIsAlive } from '../../../dist/server/kernel/pidfd.js';

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A running process and a pidfd for it, both gone when the test ends. */
async function sleeper(t: TestContext): Promise<{ pid: number; fd: number }> {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.after(() => child.kill('SIGKILL'));
  await once(child, 'spawn');
  const { fd } = openPidfd(child.pid as number);
  assert.ok(fd >= 0);
  t.after(() => closeFd(fd));
  return { pid: child.pid as number, fd };
}

/** A new container's running instance, its init a sleeper (above). */
async function servedInstance(t: TestContext, name: string, namespace: bigint) {
  const { pid, fd } = await sleeper(t);
  const container = new Container(newRecord(name, 'register', false, null));
  const instance = new Instance(container, pid, fd, '0', namespace, 0, -1);
  container.instance = instance;
  return { pid, fd, container, instance };
}

describe('Instance.running', () => {
  test('the turn number changes once the turn is over, and not before', async () => {
    const first = currentTurn();
    assert.equal(currentTurn(), first);
    await nextTurn();
    const second = currentTurn();
    assert.notEqual(second, first);
    await nextTurn();
    assert.notEqual(currentTurn(), second);
  });

  test('an init that has died is refused from the next turn on, before anyone reports it', async (t) => {
    const { pid, fd, container, instance } = await servedInstance(t, 'turns', 1n);
    assert.equal(instance.running, true);

    process.kill(pid, 'SIGKILL');
    // Wait, within this turn, until the kernel says the process has exited.
    const deadline = Date.now() + 10_000;
    while (pidfdIsAlive(fd) && Date.now() < deadline);
    assert.equal(pidfdIsAlive(fd), false, 'the process did not exit within 10 s');
    // The poll of this turn stands for the rest of the turn...
    assert.equal(instance.running, true);
    // ...and the next turn polls again: no exit watcher runs here, and none is needed.
    await nextTurn();
    assert.equal(instance.running, false);
    assert.equal(container.state, 'Stopped');
  });

  test('an instance that was marked ended or replaced is refused at once', async (t) => {
    const { container, instance } = await servedInstance(t, 'ended', 2n);
    assert.equal(instance.running, true);
    container.instance = undefined;
    assert.equal(instance.running, false);
    container.instance = instance;
    assert.equal(instance.running, true);
    instance.markEnded();
    assert.equal(instance.running, false);
  });
});
