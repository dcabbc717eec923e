// The lab's own record of what it made (lab.json in the lab's state directory). `lab down` does
// not depend on it: it finds everything again from the lab name.
import { join } from 'node:path';
import { readJsonFile, writeJsonFile } from '../store/json-file.js';
import { labDir } from './lab-paths.js';

export interface LabNode {
  readonly name: string;
  readonly ip: string;
  readonly podCIDR: string;
  readonly netns: string;
  /** Where the node's agent serves Hubble metrics (`http://<it>/metrics`), in the node's netns. */
  readonly metricsAddress: string;
}

export interface LabPod {
  readonly namespace: string;
  readonly name: string;
  readonly node: string;
  readonly ip: string;
  readonly netns: string;
  readonly containerId: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly ports: ReadonlyArray<{ containerPort: number; protocol: string }>;
  readonly pid: number;
}

export interface LabState {
  readonly lab: string;
  readonly nodes: readonly LabNode[];
  readonly world: {
    readonly ip: string;
    readonly netns: string;
    readonly hosts: readonly string[];
    readonly pid: number;
  };
  readonly pods: readonly LabPod[];
  readonly dnsIp: string;
  readonly worldFiles: readonly string[];
  /** The cluster store the agents share (lab-etcd.ts); absent in labs made before it was chosen. */
  readonly store?: 'embedded' | 'etcd';
}

export function readLabState(lab: string): LabState | undefined {
  return readJsonFile<LabState>(join(labDir(lab), 'lab.json'));
}

export function writeLabState(state: LabState): void {
  writeJsonFile(join(labDir(state.lab), 'lab.json'), state);
}
