// A child process for file-lock.test.ts (run with vite-node): opens the image
// named by QCOW2_HOLD_PATH with the engine (read-only if QCOW2_HOLD_MODE is
// 'ro'), prints "held" and keeps it open until it is killed.
import { Qcow2Image } from '../../../impl/index.js';

const path = process.env.QCOW2_HOLD_PATH;
if (path === undefined) throw new Error('QCOW2_HOLD_PATH is not set');
const image = await Qcow2Image.openFile(path, { readOnly: process.env.QCOW2_HOLD_MODE === 'ro' });
process.stdout.write(`held ${image.virtualSize}\n`);
setInterval(() => undefined, 1 << 30);
