// The checker's result, in qemu-img check's categories (digest §8.3–8.4).
export interface CheckReport {
  readonly verdict: 'clean' | 'leaks' | 'corrupt' | 'cannot-check';
  readonly corruptions: number;
  readonly leaks: number;
  readonly checkErrors: number;
  readonly imageEndOffset?: number;
  readonly totalClusters?: number;
  readonly allocatedClusters?: number;
  readonly fragmentedClusters?: number;
  readonly compressedClusters?: number;
  /** Per-cluster diagnostics in qemu-img check's wording (its stderr). */
  readonly messages: string[];
  /** Set when the check could not run at all (qemu-img prints no report then), with the reason. */
  readonly failure?: string;
  /**
   * The backing file name the header stores (and its format extension). The
   * image is checked alone; qemu-img check also opens the backing chain first
   * and cannot check when that fails, which is the caller's to do.
   */
  readonly backingFile?: string;
  readonly backingFormat?: string;
}

/** Exit code 1 wins over 2, which wins over 3 (qemu-img check). */
export function verdictOf(r: Pick<CheckReport, 'corruptions' | 'leaks' | 'checkErrors'>): CheckReport['verdict'] {
  if (r.checkErrors > 0) return 'cannot-check';
  if (r.corruptions > 0) return 'corrupt';
  if (r.leaks > 0) return 'leaks';
  return 'clean';
}

/** qemu-img check --output=json member names; zero-valued optional members are omitted as QEMU does. */
export function checkReportJson(report: CheckReport, filename: string): Record<string, unknown> {
  const json: Record<string, unknown> = { filename, format: 'qcow2', 'check-errors': report.checkErrors };
  const optional: [string, number | undefined][] = [
    ['image-end-offset', report.imageEndOffset],
    ['corruptions', report.corruptions],
    ['leaks', report.leaks],
    ['total-clusters', report.totalClusters],
    ['allocated-clusters', report.allocatedClusters],
    ['fragmented-clusters', report.fragmentedClusters],
    ['compressed-clusters', report.compressedClusters],
  ];
  for (const [name, value] of optional) if (value) json[name] = value;
  return json;
}
