/**
 * A problem with configuration a person gave us (environment, flags). Edges print its message as one
 * line and exit non-zero; it never carries a stack trace to the user.
 */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
