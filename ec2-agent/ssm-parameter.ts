import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { fromEnv } from '@aws-sdk/credential-provider-env';
import { fromInstanceMetadata } from '@smithy/credential-provider-imds';
import { SignatureV4 } from '@smithy/signature-v4';

/**
 * Reads one SSM parameter, decrypted, with one signed POST: the agent needs GetParameter once at
 * start, and the whole @aws-sdk/client-ssm (every SSM operation, its middleware stack and retry
 * machinery) kept it at about 75 MiB resident and its bundle at 580 KB. The parts that must be right
 * come from the AWS SDK's own maintained packages: Signature V4 (@smithy/signature-v4) and the
 * credentials, from the environment (AWS_ACCESS_KEY_ID, ...) or else from the instance role through
 * IMDSv2 (@smithy/credential-provider-imds, as the SDK's default chain does on EC2).
 */

export interface ParameterOptions {
  region: string;
  /** AWS_ENDPOINT_URL_SSM or AWS_ENDPOINT_URL when set (moto in tests), else SSM's regional endpoint. */
  endpoint?: string;
  signal?: AbortSignal;
  /** Where keys come from; by default the environment, else the instance role (see credentials()). */
  credentials?: () => Promise<{ accessKeyId: string; secretAccessKey: string; sessionToken?: string }>;
}

/** An error SSM answered with; `name` is its error code (ParameterNotFound, AccessDeniedException, ...). */
export class SsmError extends Error {
  readonly status: number;
  constructor(name: string, message: string, status: number) {
    super(message);
    this.name = name;
    this.status = status;
  }
}

const bytes = (data: string | ArrayBuffer | ArrayBufferView): string | Uint8Array =>
  typeof data === 'string'
    ? data
    : ArrayBuffer.isView(data)
      ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
      : new Uint8Array(data);

/** node:crypto behind the hash interface SignatureV4 takes (the SDK's @smithy/hash-node does the same). */
class Sha256 {
  readonly #hash: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.#hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return this.#hash.digest();
  }
}

/** Environment keys when given (as the SDK's chain tries first), else the instance role through IMDSv2. */
function credentials() {
  const env = fromEnv();
  const imds = fromInstanceMetadata({ timeout: 2000, maxRetries: 2 });
  return async () => {
    try {
      return await env();
    } catch {
      return imds();
    }
  };
}

export function ssmEndpoint(region: string, env: Record<string, string | undefined> = process.env): string {
  return env.AWS_ENDPOINT_URL_SSM || env.AWS_ENDPOINT_URL || `https://ssm.${region}.amazonaws.com`;
}

/** GetParameter with decryption: the value, or undefined when the parameter has none. */
export async function getParameter(name: string, options: ParameterOptions): Promise<string | undefined> {
  const url = new URL(options.endpoint ?? ssmEndpoint(options.region));
  const signer = new SignatureV4({
    service: 'ssm',
    region: options.region,
    credentials: options.credentials ?? credentials(),
    sha256: Sha256,
  });
  const body = JSON.stringify({ Name: name, WithDecryption: true });
  const signed = await signer.sign({
    method: 'POST',
    protocol: url.protocol,
    hostname: url.hostname,
    port: url.port ? Number(url.port) : undefined,
    path: url.pathname || '/',
    headers: {
      host: url.host,
      'content-type': 'application/x-amz-json-1.1',
      'x-amz-target': 'AmazonSSM.GetParameter',
    },
    body,
  });
  const res = await post(url, signed.headers, body, options.signal);
  const text = res.text;
  let answer: { Parameter?: { Value?: string }; __type?: string; message?: string; Message?: string } = {};
  try {
    answer = text ? JSON.parse(text) : {};
  } catch {
    // Not JSON (a proxy's error page, say): reported below by status.
  }
  if (res.status < 200 || res.status > 299) {
    // AWS JSON protocol: the code in x-amzn-errortype or __type, possibly as "namespace#Code:extra";
    // some front ends (and moto's signature check) answer in XML with <Code> and <Message>.
    const xml = (tag: string) => new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(text)?.[1];
    answer.message ??= xml('Message');
    const raw = res.errorType ?? answer.__type ?? xml('Code') ?? `HTTP${res.status}`;
    const code = (raw.split('#').pop() ?? raw).split(':')[0] ?? raw;
    throw new SsmError(code, answer.message ?? answer.Message ?? `HTTP ${res.status}`, res.status);
  }
  return answer.Parameter?.Value;
}

/**
 * One POST with node:http(s) rather than fetch: fetch loads undici, about 10 MiB of resident memory
 * for a request made once (docs/bench.md). Resolves with the status and the whole body.
 */
function post(
  url: URL,
  headers: Record<string, string>,
  body: string,
  signal: AbortSignal | undefined,
): Promise<{ status: number; text: string; errorType: string | undefined }> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(url, { method: 'POST', headers, ...(signal ? { signal } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const type = res.headers['x-amzn-errortype'];
        resolve({
          status: res.statusCode ?? 0,
          text: Buffer.concat(chunks).toString('utf8'),
          errorType: typeof type === 'string' ? type : undefined,
        });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}
