/** The tags every created resource carries; teardown and idempotent re-runs find resources by them. */
export function projectTags(name: string): { Key: string; Value: string }[] {
  return [
    { Key: 'Name', Value: name },
    { Key: 'Project', Value: name },
  ];
}

/** SSM / EC2 tag filter selecting the project's resources. */
export function projectFilter(name: string) {
  return { Name: 'tag:Project', Values: [name] };
}

/** The token parameter's name when --api-token is given without --api-token-parameter. */
export function defaultTokenParameter(name: string): string {
  return `/${name}/api-token`;
}
