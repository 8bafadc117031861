// JUnit XML for CI dashboards: one testsuite per gate run, one testcase per
// property; a failed property carries the text report (with the replay line) in
// its <failure>, a run that could not be judged an <error>.
import { formatText } from './format-text.js';
import type { RunResult } from './run-result.js';

export function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/\p{Cc}/gu, (c) => (c === '\t' || c === '\n' || c === '\r' ? c : '?'));
}

function propertiesElement(suiteProperties: Readonly<Record<string, string>>): string[] {
  const entries = Object.entries(suiteProperties);
  if (entries.length === 0) return [];
  return ['  <properties>', ...entries.map(([name, value]) => `    <property name="${escapeXml(name)}" value="${escapeXml(value)}"/>`), '  </properties>'];
}

function testcase(r: RunResult): string {
  const head = `  <testcase classname="qcow2-verify.${escapeXml(r.impl)}" name="${escapeXml(r.property)}" time="${(r.timeMs / 1000).toFixed(3)}">`;
  const text = escapeXml(formatText(r));
  switch (r.status) {
    case 'passed':
      return `${head}\n    <system-out>${text}</system-out>\n  </testcase>`;
    case 'property-failed':
      return `${head}\n    <failure message="${escapeXml(r.replay)}" type="property-failed">${text}</failure>\n  </testcase>`;
    case 'oracle-unavailable':
    case 'harness-error':
      return `${head}\n    <error message="${escapeXml(r.message)}" type="${r.status}">${text}</error>\n  </testcase>`;
    default: {
      const never: never = r;
      throw new Error(`unknown run result ${JSON.stringify(never)}`);
    }
  }
}

/**
 * One testsuite with one testcase per result; `suiteProperties` become the
 * suite's `<properties>` (the gate names the QEMU binaries that ran there).
 */
export function formatJunit(results: readonly RunResult[], suiteProperties: Readonly<Record<string, string>> = {}): string {
  const failures = results.filter((r) => r.status === 'property-failed').length;
  const errors = results.filter((r) => r.status === 'oracle-unavailable' || r.status === 'harness-error').length;
  const time = results.reduce((t, r) => t + r.timeMs, 0) / 1000;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuite name="qcow2-verify gate" tests="${results.length}" failures="${failures}" errors="${errors}" time="${time.toFixed(3)}">`,
    ...propertiesElement(suiteProperties),
    ...results.map(testcase),
    '</testsuite>',
    '',
  ].join('\n');
}
