// `qcow2-verify --version`: qemu-img's layout ("NAME version X"), for the tool
// and for the QEMU it is judged against, whose verdicts differ between releases.
import { toolVersion } from '../corpus/provenance.js';
import { qemuVersion } from '../oracle/index.js';

/** The lines --version prints: ours, then qemu-img's and qemu-io's (or why they are missing). */
export async function versionLines(): Promise<string[]> {
  const [name = 'qcow2-verify', version = 'unknown'] = (await toolVersion()).split(' ');
  const qemu = await qemuVersion().then(
    (v) => [`qemu-img version ${v.qemuImg}`, `qemu-io version ${v.qemuIo}`],
    (error: unknown) => [`qemu-img: ${error instanceof Error ? error.message : String(error)}`],
  );
  return [`${name} version ${version}`, ...qemu];
}
