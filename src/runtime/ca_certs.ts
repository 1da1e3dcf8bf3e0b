/**
 * A build step that fails behind a TLS-intercepting proxy says so in its output (npm:
 * `SELF_SIGNED_CERT_IN_CHAIN`; OpenSSL, curl, pip, git: "self-signed certificate in certificate
 * chain", "unable to get local issuer certificate"): hd then hints at `ca_certs = true`, which
 * gives the sandbox the host's CA certificates.
 *
 * @example
 * ```ts
 * import { CA_CERTS_HINT, tlsInterception } from "./ca_certs.ts";
 * if (tlsInterception("npm ERR! code SELF_SIGNED_CERT_IN_CHAIN")) console.log(CA_CERTS_HINT);
 * ```
 * @module
 */

const PATTERNS = [
  /SELF_SIGNED_CERT_IN_CHAIN/,
  /self[- ]signed certificate in certificate chain/i,
  /unable to get local issuer certificate/i,
  /UNABLE_TO_GET_ISSUER_CERT_LOCALLY/,
];

/** True when an output line says a TLS certificate chain was not trusted. Pure. */
export function tlsInterception(line: string): boolean {
  return PATTERNS.some((p) => p.test(line));
}

/** The hint hd gives when a step failed with {@link tlsInterception}. */
export const CA_CERTS_HINT = "the step met a TLS certificate it does not trust (a proxy that " +
  "intercepts TLS?): add `ca_certs = true` to [environment] in hd.toml to give it the host's CA " +
  "certificates";
