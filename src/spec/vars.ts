import type { SourcePos } from '../types.js';
import type { KeyPath, YamlFile } from './yamlfile.js';

/** Where a variable (or a part of one) was written: a file and the path inside it. */
export interface Origin {
  file: YamlFile;
  path: KeyPath;
}

/** One source of variables (a group_vars file, a play's vars, role defaults...). */
export interface VarLayer {
  /** For messages: "group_vars/all.yml", "role harbor defaults". */
  name: string;
  values: Record<string, unknown>;
  file?: YamlFile;
  /** Path of `values` inside `file`. */
  base: KeyPath;
}

export function layerFromFile(name: string, file: YamlFile, base: KeyPath, values: Record<string, unknown>): VarLayer {
  return { name, values, file, base };
}

const SEP = '\u0000';
const keyOf = (path: KeyPath) => path.map(String).join(SEP);

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
}

/**
 * Variables merged from layers, lowest precedence first. Maps merge key by
 * key; lists and scalars replace. Every value remembers the file and line it
 * came from, so an error about `harbor.projects[2].registry` can point at the
 * line that wrote it, whichever layer that was.
 */
export class MergedVars {
  readonly values: Record<string, unknown> = {};
  private readonly origins = new Map<string, Origin>();

  constructor(layers: VarLayer[] = []) {
    for (const l of layers) this.add(l);
  }

  add(layer: VarLayer): this {
    for (const [k, v] of Object.entries(layer.values)) this.merge(this.values, [k], v, layer);
    return this;
  }

  private merge(target: Record<string, unknown>, path: KeyPath, v: unknown, layer: VarLayer): void {
    const k = String(path[path.length - 1]);
    const cur = target[k];
    if (isPlainObject(cur) && isPlainObject(v)) {
      this.record(path, layer, false);
      for (const [ck, cv] of Object.entries(v)) this.merge(cur, [...path, ck], cv, layer);
      return;
    }
    target[k] = deepCopy(v);
    this.record(path, layer, true);
  }

  private record(path: KeyPath, layer: VarLayer, replace: boolean): void {
    if (!layer.file) return;
    const key = keyOf(path);
    if (replace) {
      for (const k of [...this.origins.keys()]) if (k.startsWith(key + SEP)) this.origins.delete(k);
    }
    this.origins.set(key, { file: layer.file, path: [...layer.base, ...path] });
  }

  /** The file position of the variable at `path` (e.g. ["harbor", "projects", 2, "registry"]). */
  locate(path: KeyPath, key = false): SourcePos | undefined {
    for (let n = path.length; n > 0; n--) {
      const o = this.origins.get(keyOf(path.slice(0, n)));
      if (o) {
        const full = [...o.path, ...path.slice(n)];
        return key ? o.file.locateKey(full) : o.file.locate(full);
      }
    }
    return undefined;
  }
}

// Copies plain objects and lists, so later merges (and secret resolution) never write into a layer's own values.
function deepCopy(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(deepCopy);
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = deepCopy(x);
    return out;
  }
  return v;
}
