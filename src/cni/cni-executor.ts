// A CNI executor that runs a .conflist the way libcni does, for the lab (which creates pods
// exactly as a runtime would) and for tests: plugins in list order for ADD and CHECK, in reverse
// for DEL; each plugin gets the list's name and cniVersion, the previous plugin's result as
// prevResult, and runtimeConfig for the capabilities it declares. The ADD result is cached (like
// /var/lib/cni/results) with the attachment it belongs to, and handed to DEL and CHECK as
// prevResult. GC and STATUS follow libcni's GCNetworkList and GetStatusNetworkList.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CniErrorResult } from './cni-error.js';
import { type CniAttachment, type CniResult, isAtLeast } from './cni-types.js';

export interface ConfList {
  readonly cniVersion: string;
  readonly name: string;
  readonly plugins: ReadonlyArray<Readonly<Record<string, unknown>>>;
  readonly disableCheck?: boolean;
}

export interface RuntimeConf {
  readonly containerId: string;
  readonly netns: string;
  readonly ifname: string;
  /** CNI_ARGS pairs, e.g. K8S_POD_NAME. IgnoreUnknown=1 is always added, as runtimes do. */
  readonly args?: Readonly<Record<string, string>>;
  /** Values for plugin capabilities (portMappings, bandwidth, ...). */
  readonly capabilityArgs?: Readonly<Record<string, unknown>>;
  /** The runtime-level "args" object passed to every plugin (args.cni.labels). */
  readonly confArgs?: Readonly<Record<string, unknown>>;
}

export interface ExecutorOptions {
  /** Directories searched for plugin executables, in order. */
  readonly cniPath: readonly string[];
  /** Where ADD results are cached for DEL and CHECK. */
  readonly cacheDir: string;
  /** A command prefix to run plugins under, e.g. ['nsenter', '--net=/run/netns/node1', '--']. */
  readonly wrap?: readonly string[];
  readonly timeoutMs?: number;
}

interface CacheEntry {
  readonly kind: 'cniCacheV1';
  readonly network: string;
  readonly rt: RuntimeConf;
  readonly result: CniResult;
}

export class CniExecError extends Error {
  readonly code: number;
  readonly plugin: string;
  readonly details: string;
  constructor(plugin: string, command: string, r: CniErrorResult) {
    super(`${plugin} ${command}: ${r.msg}${r.details ? ` (${r.details.split('\n')[0]})` : ''}`);
    this.name = 'CniExecError';
    this.code = r.code;
    this.plugin = plugin;
    this.details = r.details ?? '';
  }
}

export class CniExecutor {
  readonly #opts: ExecutorOptions;

  constructor(opts: ExecutorOptions) {
    this.#opts = opts;
  }

  async add(list: ConfList, rt: RuntimeConf): Promise<CniResult> {
    let prev: CniResult | undefined;
    for (const plugin of list.plugins) {
      const out = await this.#exec('ADD', list, plugin, rt, prev);
      prev = JSON.parse(out) as CniResult;
    }
    const result = prev ?? { cniVersion: list.cniVersion };
    mkdirSync(this.#opts.cacheDir, { recursive: true });
    const entry: CacheEntry = { kind: 'cniCacheV1', network: list.name, rt, result };
    writeFileSync(this.#cachePath(list, rt), JSON.stringify(entry));
    return result;
  }

  /**
   * GC as libcni's GCNetworkList does it: a DEL of the whole list for every cached attachment of
   * this network missing from validAttachments, then (cniVersion 1.1.0 and later) GC to each
   * plugin with cni.dev/valid-attachments. It goes on past failures and throws them together.
   */
  async gc(list: ConfList, validAttachments: readonly CniAttachment[]): Promise<void> {
    const valid = new Set(validAttachments.map((a) => `${a.containerID}\n${a.ifname}`));
    const errors: Error[] = [];
    for (const cached of this.#cachedAttachments(list.name)) {
      if (valid.has(`${cached.rt.containerId}\n${cached.rt.ifname}`)) continue;
      await this.del(list, cached.rt).catch((err: Error) => {
        errors.push(new Error(`delete stale attachment ${cached.rt.containerId}/${cached.rt.ifname}: ${err.message}`));
      });
    }
    if (isAtLeast(list.cniVersion, '1.1.0')) {
      // libcni sets both spellings of the key (the spec named it cni.dev/attachments at first).
      const inject = { 'cni.dev/valid-attachments': validAttachments, 'cni.dev/attachments': validAttachments };
      for (const plugin of list.plugins)
        await this.#runNetwork('GC', list, { ...plugin, ...inject }).catch((err: Error) => errors.push(err));
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, errors.map((e) => e.message).join('; '));
  }

  /** STATUS as libcni's GetStatusNetworkList: each plugin in order, the first error is thrown; before 1.1.0 nothing is asked. */
  async status(list: ConfList): Promise<void> {
    if (!isAtLeast(list.cniVersion, '1.1.0')) return;
    for (const plugin of list.plugins) await this.#runNetwork('STATUS', list, plugin);
  }

  async check(list: ConfList, rt: RuntimeConf): Promise<void> {
    if (list.disableCheck) return;
    const cached = this.cachedResult(list, rt);
    if (!cached) throw new Error(`no cached ADD result for ${rt.containerId}/${rt.ifname} in network ${list.name}`);
    for (const plugin of list.plugins) await this.#exec('CHECK', list, plugin, rt, cached);
  }

  async del(list: ConfList, rt: RuntimeConf): Promise<void> {
    const cached = this.cachedResult(list, rt);
    for (const plugin of [...list.plugins].reverse()) await this.#exec('DEL', list, plugin, rt, cached);
    rmSync(this.#cachePath(list, rt), { force: true });
  }

  cachedResult(list: ConfList, rt: RuntimeConf): CniResult | undefined {
    const p = this.#cachePath(list, rt);
    if (!existsSync(p)) return undefined;
    return (JSON.parse(readFileSync(p, 'utf8')) as { result: CniResult }).result;
  }

  /** Cached ADDs of one network that record their attachment (entries of older builds do not). */
  #cachedAttachments(network: string): CacheEntry[] {
    let names: string[];
    try {
      names = readdirSync(this.#opts.cacheDir);
    } catch {
      return [];
    }
    const out: CacheEntry[] = [];
    for (const name of names) {
      try {
        const e = JSON.parse(readFileSync(join(this.#opts.cacheDir, name), 'utf8')) as Partial<CacheEntry>;
        if (e.network === network && e.rt?.containerId && e.rt.ifname) out.push(e as CacheEntry);
      } catch {
        // not a cache entry
      }
    }
    return out;
  }

  /** GC and STATUS: the network's config, no attachment (CNI_CONTAINERID etc. empty, as libcni). */
  async #runNetwork(
    command: 'GC' | 'STATUS',
    list: ConfList,
    plugin: Readonly<Record<string, unknown>>,
  ): Promise<void> {
    const conf = { ...plugin, name: list.name, cniVersion: list.cniVersion };
    const env = {
      CNI_COMMAND: command,
      CNI_CONTAINERID: '',
      CNI_NETNS: '',
      CNI_IFNAME: '',
      CNI_ARGS: '',
      CNI_PATH: this.#opts.cniPath.join(':'),
    };
    await this.#run(String(plugin.type), env, JSON.stringify(conf), command);
  }

  async version(type: string): Promise<unknown> {
    const out = await this.#run(type, { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}', 'VERSION');
    return JSON.parse(out);
  }

  #cachePath(list: ConfList, rt: RuntimeConf): string {
    return join(this.#opts.cacheDir, `${list.name}-${rt.containerId}-${rt.ifname}`);
  }

  async #exec(
    command: 'ADD' | 'DEL' | 'CHECK',
    list: ConfList,
    plugin: Readonly<Record<string, unknown>>,
    rt: RuntimeConf,
    prev: CniResult | undefined,
  ): Promise<string> {
    const type = String(plugin.type);
    const conf: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: list.cniVersion };
    if (rt.confArgs) conf.args = rt.confArgs;
    const caps = (plugin.capabilities ?? {}) as Record<string, boolean>;
    const runtimeConfig: Record<string, unknown> = {};
    for (const [k, on] of Object.entries(caps))
      if (on && rt.capabilityArgs?.[k] !== undefined) runtimeConfig[k] = rt.capabilityArgs[k];
    if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
    if (prev) conf.prevResult = prev;
    const env = {
      CNI_COMMAND: command,
      CNI_CONTAINERID: rt.containerId,
      CNI_NETNS: rt.netns,
      CNI_IFNAME: rt.ifname,
      CNI_ARGS: Object.entries({ IgnoreUnknown: '1', ...(rt.args ?? {}) })
        .map(([k, v]) => `${k}=${v}`)
        .join(';'),
      CNI_PATH: this.#opts.cniPath.join(':'),
    };
    const out = await this.#run(type, env, JSON.stringify(conf), command);
    // A plugin that adds nothing to the result (DEL, CHECK, or ADD by a pass-through plugin
    // that prints nothing) keeps the previous one.
    return out.trim() === '' ? JSON.stringify(prev ?? { cniVersion: list.cniVersion }) : out;
  }

  async #run(type: string, env: Record<string, string>, stdin: string, command: string): Promise<string> {
    const exe = this.#opts.cniPath.map((d) => join(d, type)).find((p) => existsSync(p));
    if (!exe) throw new Error(`plugin ${type} not found in CNI_PATH ${this.#opts.cniPath.join(':')}`);
    const wrap = this.#opts.wrap ?? [];
    const argv = [...wrap, exe];
    const child = spawn(argv[0], argv.slice(1), {
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: this.#opts.timeoutMs ?? 60_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    // A plugin may exit before reading all of stdin (membrane-cni refuses configs over 1 MiB).
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin);
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', resolve);
    });
    if (code !== 0) {
      let r: CniErrorResult;
      try {
        r = JSON.parse(stdout) as CniErrorResult;
      } catch {
        r = { cniVersion: '', code: 999, msg: `exit ${code}: ${(stderr || stdout).trim().slice(0, 500)}` };
      }
      throw new CniExecError(type, command, r);
    }
    return stdout;
  }
}
