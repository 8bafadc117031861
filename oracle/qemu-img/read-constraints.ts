// Options shared by the qemu-img subcommands that only read an image.

export interface ReadConstraints {
  /** Image format; defaults to qcow2 (a damaged image is never format-probed). */
  readonly format?: string;
  /** `-U`: read an image another process (e.g. a qemu-io session) holds open. */
  readonly forceShare?: boolean;
}

export function shareFlag(constraints: ReadConstraints): string[] {
  return constraints.forceShare === true ? ['-U'] : [];
}
