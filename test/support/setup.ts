/**
 * Mocha setup for every suite (.mocharc.json `require`).
 * - Progress lines (provider/logging/progress.ts) go to stderr for the Pulumi CLI to show;
 *   in-process tests would only clutter the output. Tests that check progress set
 *   PULUMI_PROXMOX_PROGRESS=1 themselves.
 * - Converted OCI images are cached by digest; tests keep theirs out of the user's cache.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

process.env.PULUMI_PROXMOX_PROGRESS ??= "0";
process.env.PULUMI_PROXMOX_LXC_OCI_CACHE ??= fs.mkdtempSync(path.join(os.tmpdir(), "oci-cache-tests-"));
