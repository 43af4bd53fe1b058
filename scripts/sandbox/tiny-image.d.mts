/** Writes an OCI image layout into `dir`: one tiny linux/amd64 image per ref name. Returns `dir`. */
export function writeOciLayout(dir: string, refs: string[]): string;
