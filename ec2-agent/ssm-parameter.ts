import { type BinaryLike, createHash, createHmac } from 'node:crypto';
import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { text } from 'node:stream/consumers';
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
  /** Where keys come from; by default the environment, else the instance role (see getParameter). */
  credentials?: () => Promise<{ accessKeyId: string; secretAccessKey: string; sessionToken?: string }>;
}

type Data = string | ArrayBuffer | ArrayBufferView;
/** node:crypto takes strings and views but not a bare ArrayBuffer. */
const bytes = (data: Data) => (data instanceof ArrayBuffer ? new Uint8Array(data) : data) as BinaryLike;

/** node:crypto behind the hash interface SignatureV4 takes (the SDK's @smithy/hash-node does the same). */
class Sha256 {
  readonly #hash;
  constructor(secret?: Data) {
    this.#hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: Data): void {
    this.#hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return this.#hash.digest();
  }
}

/** How long and how often to ask the instance metadata service for the role's keys. */
const IMDS = { timeout: 2000, maxRetries: 2 };

/** GetParameter with decryption: the value, or undefined when the parameter has none. */
export async function getParameter(name: string, options: ParameterOptions): Promise<string | undefined> {
  const { env } = process;
  const regional = `https://ssm.${options.region}.amazonaws.com`;
  const url = new URL(options.endpoint ?? (env.AWS_ENDPOINT_URL_SSM || env.AWS_ENDPOINT_URL || regional));
  const signer = new SignatureV4({
    service: 'ssm',
    region: options.region,
    // Environment keys when given (as the SDK's chain tries first), else the instance role through IMDSv2.
    credentials: options.credentials ?? (() => fromEnv()().catch(() => fromInstanceMetadata(IMDS)())),
    sha256: Sha256,
  });
  const body = JSON.stringify({ Name: name, WithDecryption: true });
  const { headers } = await signer.sign({
    method: 'POST',
    protocol: url.protocol,
    hostname: url.hostname,
    path: url.pathname, // the host header carries the port; the signer reads only path, query and headers
    headers: {
      host: url.host,
      'content-type': 'application/x-amz-json-1.1',
      'x-amz-target': 'AmazonSSM.GetParameter',
    },
    body,
  });
  // node:http(s) rather than fetch: fetch loads undici, about 10 MiB of resident memory for a request
  // made once (docs/bench.md).
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const req = send(url, { method: 'POST', headers, signal: options.signal });
  req.end(body);
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  const reply = await text(res);
  let answer: { Parameter?: { Value?: string }; __type?: string; message?: string; Message?: string } = {};
  try {
    answer = JSON.parse(reply);
  } catch {
    // Not JSON (a proxy's error page, say): reported below by status.
  }
  const status = res.statusCode ?? 0;
  if (status < 200 || status > 299) {
    // AWS JSON protocol: the code in x-amzn-errortype or __type, possibly as "namespace#Code:extra";
    // some front ends (and moto's signature check) answer in XML with <Code> and <Message>.
    const xml = (tag: string) => new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(reply)?.[1];
    const type = res.headers['x-amzn-errortype'] as string | undefined; // a single header: one string
    const raw = type ?? answer.__type ?? xml('Code') ?? `HTTP${status}`;
    const code = (raw.split('#').pop() ?? raw).split(':')[0] ?? raw;
    // An error named by SSM's code (ParameterNotFound, AccessDeniedException, ...).
    const message = answer.message ?? xml('Message') ?? answer.Message ?? `HTTP ${status}`;
    throw Object.assign(new Error(message), { name: code, status });
  }
  return answer.Parameter?.Value;
}
