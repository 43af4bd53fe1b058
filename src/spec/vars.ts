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
      // keys the lower layer set keep pointing at the lower layer's file
      const own = this.origins.get(keyOf(path));
      if (own) {
        for (const ck of Object.keys(cur)) {
          const childKey = keyOf([...path, ck]);
          if (!this.origins.has(childKey)) this.origins.set(childKey, { file: own.file, path: [...own.path, ck] });
        }
      }
      this.setOrigin(path, layer);
      for (const [ck, cv] of Object.entries(v)) this.merge(cur, [...path, ck], cv, layer);
      return;
    }
    target[k] = deepCopy(v);
    for (const key of [...this.origins.keys()]) if (key.startsWith(keyOf(path) + SEP)) this.origins.delete(key);
    this.setOrigin(path, layer);
  }

  private setOrigin(path: KeyPath, layer: VarLayer): void {
    // a value from the command line (-e key=value) has no file: forget the one it replaced
    if (!layer.file) this.origins.delete(keyOf(path));
    else this.origins.set(keyOf(path), { file: layer.file, path: [...layer.base, ...path] });
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
