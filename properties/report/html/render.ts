// The renderer of the HTML report: one self-contained page (inline CSS, script
// and data; no network, no external fonts) from a layout, and for a failure
// the qemu-io script with its failing step, the first divergence in words and
// the model's expectation.
import { clusterMarks, clusterRoles, type ClusterRole, type ImageLayout } from './layout.js';
import type { ModelExpectation } from './expectation.js';
import { pageScript } from './page-script.js';

export interface PageText {
  readonly title: string;
  /** The shrunk sequence in qemu-io syntax; the last line is the failing step. */
  readonly script?: readonly string[];
  /** Index in `script` of the failing step. */
  readonly failingStep?: number;
  /** The first divergence in words. */
  readonly divergence?: string;
  /** Other lines to show as they are (verdicts, replay command). */
  readonly notes?: readonly string[];
}

/** Guest-view rows listed per view at most; the rest are counted. */
const guestRowsMax = 2000;

const roleColours: Record<ClusterRole | 'mixed', string> = {
  header: '#444', l1: '#1f77b4', l2: '#6baed6', refcountTable: '#9467bd', refcountBlock: '#c5b0d5', snapshotTable: '#8c564b',
  snapshotL1: '#c49c94', bitmapDirectory: '#e377c2', bitmapTable: '#f7b6d2', bitmapData: '#17becf', data: '#2ca02c', compressed: '#bcbd22', free: '#eee', mixed: '#ff7f0e',
};
/** One character per role in the embedded data (roleCodes[i] ↔ clusterRoles[i]). */
const roleCodes = 'hLlRrSsDTBdcf';
if (roleCodes.length !== clusterRoles.length || !roleCodes.endsWith('f')) throw new Error('roleCodes must give one code per role, free last as f');

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Runs of equal values, `[value, count]`: a big image is long runs of data
 * clusters with the same role, refcount and references, so the page grows with
 * the runs, not with the clusters (a sparse 1 TiB image of 1 MiB clusters has
 * over a million clusters and a few hundred runs).
 */
function runs<T>(values: ArrayLike<T>): [T, number][] {
  const out: [T, number][] = [];
  for (let i = 0; i < values.length; i++) {
    const last = out[out.length - 1];
    if (last !== undefined && last[0] === values[i]) last[1]++;
    else out.push([values[i]!, 1]);
  }
  return out;
}

function pageData(layout: ImageLayout, expectation: ModelExpectation | undefined): string {
  const roles: Record<number, number[]> = {};
  const marks: Record<number, number> = {};
  const { clusters } = layout;
  const primary: string[] = [];
  for (let i = 0; i < clusters.count; i++) {
    const mask = clusters.roleMask(i);
    // The lowest set bit is the first role in clusterRoles order.
    primary.push(mask === 0 ? 'f' : roleCodes[31 - Math.clz32(mask & -mask)]!);
    if ((mask & (mask - 1)) !== 0) roles[i] = clusters.roles(i).map((r) => clusterRoles.indexOf(r));
    if (clusters.markMask(i) !== 0) marks[i] = clusters.markMask(i);
  }
  const data = {
    clusterSize: layout.clusterSize,
    roleNames: clusterRoles,
    markNames: clusterMarks,
    codes: roleCodes,
    primary: runs(primary),
    roles,
    marks,
    references: runs(clusters.references.subarray(0, clusters.count)),
    refcounts: runs(layout.refcounts.map((r) => (r === undefined ? null : Number(r)))),
    expected: Object.fromEntries(expectation?.refcounts ?? []),
  };
  // '<' escaped so no string in the data can end the script element.
  return JSON.stringify(data).replace(/</g, '\\u003c');
}

function guestViews(layout: ImageLayout, expectation: ModelExpectation | undefined): string {
  const differing = new Set((expectation?.differences ?? []).map((d) => `${d.view}/${d.guestCluster}`));
  return layout.views
    .map((view) => {
      const rows = view.entries.slice(0, guestRowsMax).map((e) => {
        const host = e.hostCluster === undefined ? '' : ` data-host="${e.hostCluster}"`;
        const cls = differing.has(`${view.label}/${e.guestCluster}`) ? ' class="differs"' : '';
        const hostText = e.hostCluster === undefined ? '-' : `${e.hostCluster} @ 0x${(e.hostCluster * layout.clusterSize).toString(16)}`;
        return `<tr${host}${cls} data-guest="${e.guestCluster}"><td>${e.guestCluster}</td><td>0x${(e.guestCluster * layout.clusterSize).toString(16)}</td><td>${e.kind}</td><td>${hostText}</td></tr>`;
      });
      const more = view.entries.length > guestRowsMax ? `<p>… ${view.entries.length - guestRowsMax} more entries</p>` : '';
      return `<details open class="view" data-view="${escapeHtml(view.label)}"><summary>${escapeHtml(view.label)}: ${view.entries.length} mapped guest clusters</summary><table><tr><th>guest cluster</th><th>guest offset</th><th>kind</th><th>host cluster</th></tr>${rows.join('')}</table>${more}</details>`;
    })
    .join('');
}

function failureSection(text: PageText, expectation: ModelExpectation | undefined): string {
  const parts: string[] = [];
  if (text.divergence !== undefined) parts.push(`<h2>First divergence</h2><p id="divergence">${escapeHtml(text.divergence)}</p>`);
  if (text.script !== undefined) {
    const lines = text.script.map((line, i) => (i === text.failingStep ? `<span class="failing" data-step="${i + 1}">${escapeHtml(line)}   # &lt;- fails here</span>` : `<span data-step="${i + 1}">${escapeHtml(line)}</span>`));
    parts.push(`<h2>Shrunk sequence (qemu-io script)</h2><pre id="script">${lines.join('\n')}</pre>`);
  }
  const differences = expectation?.differences ?? [];
  if (differences.length > 0) {
    const rows = differences.map((d) => `<tr><td>${escapeHtml(d.view)}</td><td>${d.guestCluster < 0 ? '-' : d.guestCluster}</td><td>${escapeHtml(d.model)}</td><td>${escapeHtml(d.image)}</td></tr>`);
    parts.push(`<h2>Model and implementation disagree</h2><table id="differences"><tr><th>view</th><th>guest cluster</th><th>model</th><th>implementation</th></tr>${rows.join('')}</table>`);
  }
  if (text.notes !== undefined && text.notes.length > 0) parts.push(`<pre class="notes">${escapeHtml(text.notes.join('\n'))}</pre>`);
  return parts.join('');
}

const style = `body{font:13px/1.4 monospace;margin:16px;color:#222}h1{font-size:18px}h2{font-size:15px;margin:14px 0 4px}
#grid{display:flex;flex-wrap:wrap;align-content:flex-start;gap:1px;width:820px;max-height:420px;overflow:auto;border:1px solid #ccc;padding:2px}
.cell{width:11px;height:11px;box-sizing:border-box;cursor:pointer}.marked{border:2px solid #d00;background-image:repeating-linear-gradient(45deg,transparent 0 2px,#d00 2px 3px)}
.few .cell{width:24px;height:24px}.cell.selected{outline:2px solid #000}${Object.entries(roleColours).map(([r, c]) => `.role-${r}{background-color:${c}}`).join('')}
.legend span{display:inline-block;margin-right:10px}.legend i{display:inline-block;width:11px;height:11px;margin-right:3px;vertical-align:middle}
.pic{display:flex;gap:16px;align-items:flex-start}#cell-info{white-space:pre;width:812px;min-height:6em;border:1px solid #ccc;padding:4px;margin-top:6px}
.views{max-height:520px;overflow:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:1px 6px;text-align:left}
tr[data-host]{cursor:pointer}tr.differs td{background:#fdd}.failing{background:#fdd;font-weight:bold}#findings li{color:#a00}`;

/** The whole page for `layout`; `expectation` adds the model's side where there is a model. */
export function renderHtml(layout: ImageLayout, text: PageText, expectation?: ModelExpectation): string {
  const legend = [...clusterRoles, 'mixed' as const].map((r) => `<span><i class="role-${r}"></i>${r}</span>`).join('') + '<span><i class="marked"></i>wrong (see marks)</span>';
  const findings = layout.findings.length === 0 ? '<p>qemu-img check (the model\'s checker): no errors</p>' : `<ul id="findings">${layout.findings.slice(0, 200).map((f) => `<li>${escapeHtml(f)}</li>`).join('')}</ul>`;
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(text.title)}</title><style>${style}</style></head><body>
<h1>${escapeHtml(text.title)}</h1>${failureSection(text, expectation)}
<h2>Host clusters (${layout.clusters.count} × ${layout.clusterSize} bytes, file ${layout.fileSize} bytes)</h2>
<div class="legend">${legend}</div><p><span id="scale"></span> · range <input id="range-from" size="8"> to <input id="range-to" size="8"> <button id="zoom">zoom</button> <button id="zoom-all">whole file</button></p>
<div class="pic"><div><div id="grid"></div><div id="cell-info">hover or click a cell</div></div><div class="views"><h2>Guest view (guest cluster → host cluster)</h2>${guestViews(layout, expectation)}</div></div>
<h2>Checker findings</h2>${findings}
<script type="application/json" id="report-data">${pageData(layout, expectation)}</script><script>${pageScript}</script></body></html>
`;
}
