import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FileIpam } from '../../src/cni/ipam.js';

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'mbr-ipam-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('FileIpam', () => {
  it('hands out addresses after the gateway, one per container interface', () => {
    withDir((dir) => {
      const ipam = new FileIpam(dir, '10.9.0.0/24');
      assert.deepEqual(ipam.allocate('a', 'eth0'), { ip: '10.9.0.2', gateway: '10.9.0.1', prefixLen: 24 });
      assert.equal(ipam.allocate('b', 'eth0').ip, '10.9.0.3');
      assert.equal(ipam.allocate('a', 'net1').ip, '10.9.0.4');
    });
  });

  it('returns the same address when ADD repeats for the same container interface', () => {
    withDir((dir) => {
      const ipam = new FileIpam(dir, '10.9.0.0/24');
      const first = ipam.allocate('a', 'eth0');
      assert.deepEqual(ipam.allocate('a', 'eth0'), first);
    });
  });

  it('releases idempotently and reuses a released address', () => {
    withDir((dir) => {
      const ipam = new FileIpam(dir, '10.9.0.0/24');
      ipam.allocate('a', 'eth0');
      ipam.allocate('b', 'eth0');
      assert.equal(ipam.release('a', 'eth0'), '10.9.0.2');
      assert.equal(ipam.release('a', 'eth0'), undefined);
      assert.equal(ipam.release('never', 'eth0'), undefined);
      assert.equal(ipam.allocate('c', 'eth0').ip, '10.9.0.2');
      assert.deepEqual([...ipam.list()].sort(), [
        ['10.9.0.2', 'c/eth0'],
        ['10.9.0.3', 'b/eth0'],
      ]);
    });
  });

  it('sees reservations made by another instance on the same directory', () => {
    withDir((dir) => {
      new FileIpam(dir, '10.9.0.0/24').allocate('a', 'eth0');
      assert.equal(new FileIpam(dir, '10.9.0.0/24').allocate('b', 'eth0').ip, '10.9.0.3');
    });
  });

  it('fails with code 100 when the CIDR is full', () => {
    withDir((dir) => {
      const ipam = new FileIpam(dir, '10.9.0.0/29');
      for (let i = 0; i < 5; i++) ipam.allocate(`c${i}`, 'eth0');
      assert.throws(() => ipam.allocate('c5', 'eth0'), {
        code: 100,
        message: 'no free address in 10.9.0.0/29 (5 in use)',
      });
    });
  });
});
