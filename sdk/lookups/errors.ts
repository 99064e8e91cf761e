/**
 * What a lookup throws when the API answered fine but there is nothing to return (e.g.
 * getContainer for a vmid that no container has). API and connection problems surface as
 * the client's own typed errors (PvePermissionError, PveConnectionError, PveSettingsError, …);
 * bad arguments as an InputError naming the field.
 */
export class ProxmoxLookupError extends Error {
  constructor(readonly lookup: string, message: string) {
    super(`${lookup}: ${message}`);
    this.name = "ProxmoxLookupError";
  }
}
