// The repository root, from this module's place in dist/src/lab/.
export function repoRoot(): string {
  return new URL('../../../', import.meta.url).pathname.replace(/\/$/, '');
}

export function demoWorldFile(): string {
  return `${repoRoot()}/lab/worlds/demo.yaml`;
}
