// Node-local IPAM: one reservation file per address under the data directory, named by the
// address and holding "containerId\nifname\n". A reservation is taken with O_CREAT|O_EXCL, so two
// concurrent ADDs can never get the same address (the kernel's file creation is the lock); a
// release deletes the file, and releasing what is not held is not an error (DEL is idempotent).
import { mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CniCode, CniError } from './cni-error.js';
import { type Cidr, formatIpv4, parseCidr, podAddressRange } from './ipv4.js';

export interface Reservation {
  readonly ip: string;
  readonly gateway: string;
  readonly prefixLen: number;
}

export class FileIpam {
  readonly #dir: string;
  readonly #cidr: Cidr;

  constructor(dataDir: string, podCIDR: string) {
    const cidr = parseCidr(podCIDR);
    if (cidr === undefined) throw new CniError(CniCode.invalidNetworkConfig, `ipam.podCIDR: not a CIDR: ${podCIDR}`);
    this.#cidr = cidr;
    this.#dir = dataDir;
  }

  /** The address held by this container interface, or a new one. */
  allocate(containerId: string, ifname: string): Reservation {
    this.#ensureDir();
    const held = this.find(containerId, ifname);
    if (held) return held;
    const { first, last, gateway } = podAddressRange(this.#cidr);
    const owner = `${containerId}\n${ifname}\n`;
    for (let n = first; n <= last; n++) {
      const ip = formatIpv4(n);
      try {
        writeFileSync(join(this.#dir, ip), owner, { flag: 'wx' });
        return { ip, gateway: formatIpv4(gateway), prefixLen: this.#cidr.prefixLen };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
          throw new CniError(CniCode.ioFailure, `reserve ${ip} in ${this.#dir}: ${(err as Error).message}`);
      }
    }
    throw new CniError(
      CniCode.ipamExhausted,
      `no free address in ${this.#cidr.network}/${this.#cidr.prefixLen} (${last - first + 1} in use)`,
    );
  }

  find(containerId: string, ifname: string): Reservation | undefined {
    const owner = `${containerId}\n${ifname}\n`;
    const gateway = formatIpv4(podAddressRange(this.#cidr).gateway);
    for (const ip of this.#entries()) {
      if (this.#owner(ip) === owner) return { ip, gateway, prefixLen: this.#cidr.prefixLen };
    }
    return undefined;
  }

  /** Frees what the container interface holds; returns the address freed, if any. */
  release(containerId: string, ifname: string): string | undefined {
    const held = this.find(containerId, ifname);
    if (!held) return undefined;
    try {
      unlinkSync(join(this.#dir, held.ip));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new CniError(CniCode.ioFailure, `release ${held.ip} in ${this.#dir}: ${(err as Error).message}`);
    }
    return held.ip;
  }

  /** Every reservation with its owner; files whose owner cannot be read are left out. */
  reservations(): Array<{ readonly ip: string; readonly containerId: string; readonly ifname: string }> {
    const out: Array<{ ip: string; containerId: string; ifname: string }> = [];
    for (const ip of this.#entries()) {
      const [containerId, ifname, rest] = (this.#owner(ip) ?? '').split('\n');
      if (containerId && ifname && rest === '') out.push({ ip, containerId, ifname });
    }
    return out;
  }

  /** How many addresses the pod CIDR has for pods, and how many are reserved. */
  usage(): { readonly capacity: number; readonly reserved: number } {
    const { first, last } = podAddressRange(this.#cidr);
    return { capacity: last - first + 1, reserved: this.#entries().length };
  }

  /** Every reservation: address → "containerId/ifname". */
  list(): Map<string, string> {
    const out = new Map<string, string>();
    for (const ip of this.#entries()) {
      const [id, ifname] = (this.#owner(ip) ?? '').split('\n');
      out.set(ip, `${id}/${ifname}`);
    }
    return out;
  }

  #entries(): string[] {
    try {
      return readdirSync(this.#dir).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new CniError(CniCode.ioFailure, `read ${this.#dir}: ${(err as Error).message}`);
    }
  }

  #owner(ip: string): string | undefined {
    try {
      return readFileSync(join(this.#dir, ip), 'utf8');
    } catch {
      return undefined;
    }
  }

  #ensureDir(): void {
    try {
      mkdirSync(this.#dir, { recursive: true });
    } catch (err) {
      throw new CniError(CniCode.ioFailure, `create ${this.#dir}: ${(err as Error).message}`);
    }
  }
}
