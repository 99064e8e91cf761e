/**
 * Mocha setup: progress lines (provider/logging/progress.ts) go to stderr for the Pulumi CLI
 * to show; in-process tests would only clutter the test output with them. Tests that check
 * progress set PULUMI_PROXMOX_PROGRESS=1 themselves.
 */
process.env.PULUMI_PROXMOX_PROGRESS ??= "0";
