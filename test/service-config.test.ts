import t from 'tap';
import { loadConfig } from '../functions/random-number/config.ts';
import { ConfigError } from '../lib/errors.ts';

t.test('defaults', async (t) => {
  t.same(
    loadConfig({}),
    { port: 8080, host: undefined, logLevel: 'info', apiToken: undefined, shutdownTimeoutMs: 10_000 },
    'PORT 8080, all interfaces, info, no token, 10 s drain',
  );
  t.equal(loadConfig({ PORT: '' }).port, 8080, 'an empty variable means unset');
});

t.test('values are parsed into types', async (t) => {
  // Each variable, as the environment gives it, and the typed field it becomes.
  const cases: [string, string, string, unknown][] = [
    ['PORT', '9000', 'port', 9000],
    ['HOST', '127.0.0.1', 'host', '127.0.0.1'],
    ['LOG_LEVEL', 'DEBUG', 'logLevel', 'debug'], // any case
    ['API_TOKEN', 'abc-0123456789abcdef0123456789abcd', 'apiToken', 'abc-0123456789abcdef0123456789abcd'],
    ['SHUTDOWN_TIMEOUT_MS', '0', 'shutdownTimeoutMs', 0],
  ];
  const config = loadConfig(Object.fromEntries(cases.map(([name, value]) => [name, value])));
  t.same(config, Object.fromEntries(cases.map(([, , key, parsed]) => [key, parsed])), 'all set');
});

t.test('whole numbers: both ends of the range are allowed, one past either is not', async (t) => {
  t.equal(loadConfig({ PORT: '0' }).port, 0, 'PORT 0 (any free port)');
  t.equal(loadConfig({ PORT: '65535' }).port, 65535, 'PORT 65535, the highest');
  t.throws(() => loadConfig({ PORT: '65536' }), { name: 'ConfigError' }, 'PORT 65536 is refused');
  t.equal(
    loadConfig({ SHUTDOWN_TIMEOUT_MS: '3600000' }).shutdownTimeoutMs,
    3_600_000,
    'SHUTDOWN_TIMEOUT_MS one hour, the longest',
  );
  t.throws(
    () => loadConfig({ SHUTDOWN_TIMEOUT_MS: '3600001' }),
    { name: 'ConfigError' },
    'a millisecond more is refused',
  );
});

t.test('bad values throw one ConfigError naming every bad variable', async (t) => {
  const err = t.throws(() => loadConfig({ PORT: '1.5', LOG_LEVEL: 'LOUD' })) as Error;
  t.type(err, ConfigError, 'a ConfigError');
  t.match(
    err.message,
    /PORT must be a whole number from 0 to 65535 \(got "1.5"\)/,
    'names PORT and the range',
  );
  t.match(err.message, /LOG_LEVEL must be one of/, 'names LOG_LEVEL too');
  const secret = t.throws(() => loadConfig({ API_TOKEN: 'bad token' })) as Error;
  t.notMatch(secret.message, 'bad token', 'a secret value is never echoed');
  t.match(secret.message, /API_TOKEN must be a Bearer token/, 'says what a token may hold');
  t.throws(
    () => loadConfig({ API_TOKEN: 'a!b' }),
    { name: 'ConfigError' },
    'outside RFC 6750 b64token: refused',
  );
  t.equal(
    loadConfig({ API_TOKEN: 'YWJj+/9_-.~0123456789abcdef0123456789==' }).apiToken,
    'YWJj+/9_-.~0123456789abcdef0123456789==',
    'base64 and its padding are fine',
  );
  const short = t.throws(() => loadConfig({ API_TOKEN: 'a'.repeat(31) })) as Error;
  t.match(short.message, /at least 32 of them/, 'a token shorter than 32 characters is refused, saying so');
  t.equal(loadConfig({ API_TOKEN: 'a'.repeat(32) }).apiToken, 'a'.repeat(32), '32 characters are enough');
  t.notMatch(short.message, /white space/, 'a short token is not told about white space');
  const carried = t.throws(() => loadConfig({ API_TOKEN: `${'a'.repeat(64)}\n` })) as Error;
  t.match(
    carried.message,
    /API_TOKEN must be a Bearer token.* \(this one ends in white space, a line end perhaps: remove it\)$/,
    'a token with a line end (a Secret made from a file): refused, naming the line end',
  );
});
