// Public front of the HTML report: lay out an image, optionally set the
// model's expectation against it, render one self-contained page.
export { imageLayout, clusterRoles, clusterMarks, type ImageLayout, type ClusterRole, type ClusterMark, HostClusters, type GuestView, type GuestEntry } from './layout.js';
export { applyModel, type ModelExpectation, type GuestDifference } from './expectation.js';
export { renderHtml, type PageText } from './render.js';
export { cellsMax } from './page-script.js';
