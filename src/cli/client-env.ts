/**
 * The variables that make clients use Turret: the proxy, the trust for every common client, the
 * Node preload and the Java trust store (client-files.ts writes the files they point at), and
 * the caller's presets that would win over them. src/cli/env.ts prints them; src/cli/run.ts
 * starts the command with them (through its allow-list, sandbox/env.ts, which drops every
 * caller variable it does not name, presets included).
 */
import { TRUSTSTORE_PASSWORD, type ClientFiles } from './client-files.js';

export const NO_PROXY_DEFAULT = 'localhost,127.0.0.1,::1';

/**
 * Every variable a common client reads its CA bundle from; all point at the bundle (Turret's CA,
 * settings.upstream_ca_file, system roots). Which client reads which is in docs/secrets.md.
 */
export const TRUST_VARIABLES = [
  'SSL_CERT_FILE', // OpenSSL-based: curl builds, Python ssl/httpx/aiohttp, Ruby, Go, .NET, uv, git (OpenSSL)
  'CURL_CA_BUNDLE', // curl, requests
  'REQUESTS_CA_BUNDLE', // requests (pip, poetry, azure-cli …)
  'GIT_SSL_CAINFO', // git
  'NODE_EXTRA_CA_CERTS', // Node, Bun
  'AWS_CA_BUNDLE', // botocore/boto3, AWS CLI, AWS SDKs
  'PIP_CERT', // pip (its own option wins over REQUESTS_CA_BUNDLE)
  'npm_config_cafile', // npm, pnpm, yarn 1 (npm's cafile overrides NODE_EXTRA_CA_CERTS)
  'YARN_HTTPS_CA_FILE_PATH', // yarn 2+
  'CARGO_HTTP_CAINFO', // cargo
  'DENO_CERT', // deno
  'BUNDLE_SSL_CA_CERT', // bundler
  'HEX_CACERTS_PATH', // hex / mix
  'COMPOSER_CAFILE', // composer
  'HTTPLIB2_CA_CERTS', // httplib2 (older Google API clients)
  'GRPC_DEFAULT_SSL_ROOTS_FILE_PATH', // gRPC core (Python, Ruby, C++ clients)
  'CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE', // gcloud
  'NIX_SSL_CERT_FILE', // nix
] as const;

/**
 * Preset variables that would take precedence over the proxy variables Turret sets (`turret env`
 * prints `unset` for them): each names a tool's own proxy setting, which it prefers to HTTPS_PROXY.
 */
const COMPETING = ['PIP_PROXY', 'CARGO_HTTP_PROXY', 'npm_config_proxy', 'npm_config_https_proxy', 'npm_config_ca'];

function javaOptions(files: ClientFiles, proxyUrl: URL): string | null {
  if (!files.truststore || /\s/.test(files.truststore)) return null;
  const port = proxyUrl.port || '80';
  const host = proxyUrl.hostname;
  return [
    `-Djavax.net.ssl.trustStore=${files.truststore}`,
    `-Djavax.net.ssl.trustStorePassword=${TRUSTSTORE_PASSWORD}`,
    '-Djavax.net.ssl.trustStoreType=PKCS12',
    // Java reads no proxy variables. The credential is left out on purpose (the JVM prints these
    // options on every start): Java programs authenticate with an Authenticator, or the agent is
    // identified by its address (`sources:`), or an isolated run captures the traffic.
    `-Dhttps.proxyHost=${host}`,
    `-Dhttps.proxyPort=${port}`,
    `-Dhttp.proxyHost=${host}`,
    `-Dhttp.proxyPort=${port}`,
    '-Dhttp.nonProxyHosts=localhost|127.0.0.1|[::1]',
    // Basic proxy auth for CONNECT is off by default since JDK 8u111; Turret's credential is Basic.
    '-Djdk.http.auth.tunneling.disabledSchemes=',
  ].join(' ');
}

/** Prepends Turret's options to a caller's, once (the later option wins for Java properties, so ours go last there). */
function combine(ours: string, theirs: string | undefined, oursLast: boolean): string {
  if (!theirs || theirs.trim() === '') return ours;
  if (theirs.includes(ours)) return theirs;
  return oursLast ? `${theirs} ${ours}` : `${ours} ${theirs}`;
}

/**
 * Variables for a client of `proxy` (http://agent:token@host:port), given the caller's environment
 * `base` (for NODE_OPTIONS / JAVA_TOOL_OPTIONS, which are combined with the caller's, not replaced).
 */
export function clientVariables(files: ClientFiles, proxy: string, base: NodeJS.ProcessEnv): Record<string, string> {
  const env: Record<string, string> = {
    HTTPS_PROXY: proxy,
    HTTP_PROXY: proxy,
    https_proxy: proxy,
    http_proxy: proxy,
    NO_PROXY: NO_PROXY_DEFAULT,
    no_proxy: NO_PROXY_DEFAULT,
  };
  for (const name of TRUST_VARIABLES) env[name] = files.bundle;
  // wget (GnuTLS builds) ignores SSL_CERT_FILE; its rc file names the bundle.
  env.WGETRC = files.wgetrc;
  // git otherwise sends each CONNECT once without credentials first (an extra 407 and record).
  env.GIT_HTTP_PROXY_AUTHMETHOD = 'basic';
  // A plain absolute path (NODE_OPTIONS splits on whitespace, so a path with one is left out).
  if (files.preload && !/\s/.test(files.preload)) env.NODE_OPTIONS = combine(`--import=${files.preload}`, base.NODE_OPTIONS, false);
  const java = javaOptions(files, new URL(proxy));
  if (java) {
    env.JAVA_TOOL_OPTIONS = combine(java, base.JAVA_TOOL_OPTIONS, true);
    // _JAVA_OPTIONS is read after JAVA_TOOL_OPTIONS and wins; a preset one gets ours appended.
    if (base._JAVA_OPTIONS) env._JAVA_OPTIONS = combine(java, base._JAVA_OPTIONS, true);
  }
  return env;
}

/**
 * Names in `base` that must not stay set beside Turret's: another spelling (letter case) of a variable
 * Turret sets — npm, for one, reads `NPM_CONFIG_CAFILE` and `npm_config_cafile` alike and the
 * order decides — and the tools' own proxy settings (COMPETING).
 */
export function competingNames(base: NodeJS.ProcessEnv, env: Record<string, string>): string[] {
  const ours = new Set(Object.keys(env));
  const folded = new Set([...ours, ...COMPETING].map((k) => k.toLowerCase()));
  return Object.keys(base).filter((k) => !ours.has(k) && folded.has(k.toLowerCase()));
}
