/**
 * A problem with configuration a person gave us (environment, flags). Edges print its message as one
 * line and exit non-zero; it never carries a stack trace to the user.
 */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * A failure that may pass by itself or be fixed elsewhere (the network, a resource not there yet, the
 * state of an AWS account), with a message written for the user. Edges print that message as one line
 * and exit 1, a status systemd retries.
 */
export class TransientError extends Error {
  override name = 'TransientError';
}
