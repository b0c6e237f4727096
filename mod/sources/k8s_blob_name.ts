/**
 * What a Kubernetes log blob's name says:
 * `kubernetes/20250606.<pod>_<namespace>_<container>-<container id>.gz`, where the pod of a
 * Deployment is `<service>-<replicaset hash>-<pod hash>`, of a DaemonSet or bare ReplicaSet
 * `<service>-<pod hash>`, of a StatefulSet `<service>-<ordinal>`.
 *
 * Generated suffixes are recognised by Kubernetes' own alphabet for them (`bcdfghjklmnpqrstvwxz`
 * and `2456789`: no vowels, no 0, 1, 3): a 5-character pod hash, then a 6 to 10 character
 * replica set hash. A name that does not follow the pattern keeps its pod name as the service.
 *
 * @example
 * ```ts
 * parseBlobName("kubernetes/20250606.apache2-igc-674b9bdb88-vm775_default_proxy-931d.gz");
 * // { date: "20250606", pod: "apache2-igc-674b9bdb88-vm775", namespace: "default",
 * //   container: "proxy", service: "apache2-igc" }
 * ```
 * @module
 */

/** The parts of a blob name. */
export interface BlobName {
  /** `YYYYMMDD`, when the name starts with one. */
  date?: string;
  pod: string;
  namespace?: string;
  container?: string;
  /** The pod name without its generated suffixes. */
  service: string;
}

const POD_HASH = /^[bcdfghjklmnpqrstvwxz2456789]{5}$/;
const RS_HASH = /^[bcdfghjklmnpqrstvwxz2456789]{6,10}$/;

/**
 * Split a log blob's name into date, pod, namespace, container and service.
 *
 * @param name the blob name, with or without its folder prefix.
 * @returns the parts; `service` is never empty.
 */
export function parseBlobName(name: string): BlobName {
  let base = name.slice(name.lastIndexOf("/") + 1).replace(/\.gz$/, "");
  let date: string | undefined;
  const m = /^(\d{8})\./.exec(base);
  if (m) {
    date = m[1];
    base = base.slice(m[0].length);
  }
  const [pod = base, namespace, rest] = base.split("_");
  const container = rest?.replace(/-[0-9a-f]{12,}$/, "");
  const parts = pod.split("-");
  if (parts.length > 1 && /^\d+$/.test(parts.at(-1)!)) {
    parts.pop(); // StatefulSet ordinal
  } else if (parts.length > 1 && POD_HASH.test(parts.at(-1)!)) {
    parts.pop();
    if (parts.length > 1 && RS_HASH.test(parts.at(-1)!)) parts.pop();
  }
  return {
    ...(date && { date }),
    pod,
    ...(namespace && { namespace }),
    ...(container && { container }),
    service: parts.join("-") || pod,
  };
}
