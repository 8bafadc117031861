// The page's own script (inline, no network): draws the host-cluster grid from
// the embedded data, buckets many clusters per cell past `cellsMax`, zooms into
// a range (a summary cell is coloured by the role most of its clusters have and
// lists them all), and shows a cell's offset, roles, refcounts and the model's
// expectation on hover or click. Kept as a string: the page must run alone.
export const cellsMax = 4096;

export const pageScript = String.raw`
const D = JSON.parse(document.getElementById('report-data').textContent);
// primary roles, references and refcounts arrive as runs [value, count] (render.ts)
const expand = (runs) => { const out = []; for (const [v, n] of runs) for (let k = 0; k < n; k++) out.push(v); return out; };
D.primary = expand(D.primary); D.references = expand(D.references); D.refcounts = expand(D.refcounts);
const ROLES = D.roleNames, MARKS = D.markNames, CELLS_MAX = ${cellsMax};
const grid = document.getElementById('grid'), info = document.getElementById('cell-info');
const total = D.primary.length;
let range = [0, total];
const hex = (n) => '0x' + n.toString(16);
function rolesOf(i) { return D.roles[i] ? D.roles[i].map((r) => ROLES[r]) : D.primary[i] === 'f' ? ['free'] : [ROLES[D.codes.indexOf(D.primary[i])]]; }
function marksOf(i) { const m = D.marks[i] || 0; return MARKS.filter((_, k) => m & (1 << k)); }
function describe(first, last) {
  if (first === last) {
    const i = first, exp = D.expected[i];
    return 'host cluster ' + i + ' @ ' + hex(i * D.clusterSize) + '\nrole: ' + rolesOf(i).join(' + ') +
      '\nrefcount on disk: ' + (D.refcounts[i] === null ? 'unreadable' : D.refcounts[i]) + ', references found: ' + D.references[i] +
      (exp === undefined ? '' : '\nmodel expects refcount: ' + exp) + (marksOf(i).length ? '\nwrong: ' + marksOf(i).join(', ') : '');
  }
  return 'host clusters ' + first + '..' + last + ' @ ' + hex(first * D.clusterSize) + '..' + hex((last + 1) * D.clusterSize - 1) + ' (click to zoom)';
}
function draw() {
  const [from, to] = range, n = to - from, per = Math.max(1, Math.ceil(n / CELLS_MAX));
  document.getElementById('scale').textContent = per === 1 ? 'one cell = one cluster' : 'one cell = ' + per + ' clusters (summary; click a cell to zoom)';
  document.getElementById('range-from').value = from; document.getElementById('range-to').value = to - 1;
  const frag = document.createDocumentFragment();
  for (let first = from; first < to; first += per) {
    const last = Math.min(first + per, to) - 1, counts = new Map(), marks = new Set();
    for (let i = first; i <= last; i++) { rolesOf(i).forEach((r) => counts.set(r, (counts.get(r) || 0) + 1)); marksOf(i).forEach((m) => marks.add(m)); }
    if (counts.size > 1) counts.delete('free');
    const roles = new Set(counts.keys());
    // One cluster with two roles is an overlap ('mixed'); a summary cell takes the role most of its clusters have.
    const role = first === last ? (roles.size === 1 ? [...roles][0] : 'mixed') : [...counts].sort((a, b) => b[1] - a[1])[0][0];
    const cell = document.createElement('div');
    cell.className = 'cell role-' + role + (marks.size ? ' marked' : '');
    cell.dataset.first = first; cell.dataset.last = last; cell.dataset.role = role;
    cell.dataset.roles = [...roles].join(' '); cell.dataset.marks = [...marks].join(' ');
    if (first === last) { cell.dataset.refcount = D.refcounts[first] === null ? 'unreadable' : D.refcounts[first]; if (D.expected[first] !== undefined) cell.dataset.expected = D.expected[first]; }
    cell.title = describe(first, last);
    frag.appendChild(cell);
  }
  grid.classList.toggle('few', frag.childNodes.length <= 512);
  grid.replaceChildren(frag);
}
grid.addEventListener('click', (e) => {
  const cell = e.target.closest('.cell'); if (!cell) return;
  const first = +cell.dataset.first, last = +cell.dataset.last;
  info.textContent = describe(first, last);
  document.querySelectorAll('.cell.selected').forEach((c) => c.classList.remove('selected'));
  if (first !== last) { range = [first, last + 1]; draw(); } else cell.classList.add('selected');
});
document.getElementById('zoom').addEventListener('click', () => {
  const from = Math.max(0, +document.getElementById('range-from').value), to = Math.min(total - 1, +document.getElementById('range-to').value);
  if (to >= from) { range = [from, to + 1]; draw(); }
});
document.getElementById('zoom-all').addEventListener('click', () => { range = [0, total]; draw(); });
document.querySelectorAll('tr[data-host]').forEach((row) => row.addEventListener('click', () => {
  const h = +row.dataset.host; if (h < range[0] || h >= range[1]) { range = [0, total]; draw(); }
  const cell = [...grid.children].find((c) => +c.dataset.first <= h && h <= +c.dataset.last);
  document.querySelectorAll('.cell.selected').forEach((c) => c.classList.remove('selected'));
  if (cell) { cell.classList.add('selected'); cell.scrollIntoView({ block: 'nearest' }); }
  info.textContent = describe(h, h);
}));
draw();
`;
