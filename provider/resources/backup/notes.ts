/**
 * Backup notes templates, rendered the way vzdump renders them (pve-manager
 * `PVE/VZDump.pm` `$generate_notes`): first the escapes `\\` and `\n`, then the variables
 * {{cluster}}, {{guestname}}, {{node}}, {{vmid}}. PVE renders the template when it makes
 * the backup; a later change is written as rendered notes (PUT …/content/{volume}), so
 * this renders it the same way.
 */

export interface NotesVariables {
  cluster?: string;
  guestname?: string;
  node: string;
  vmid: number;
}

export function renderNotes(template: string, vars: NotesVariables): string {
  const unescaped = template.replace(/\\(.)/g, (_m, c: string) => (c === "n" ? "\n" : c));
  return unescaped.replace(/\{\{(cluster|guestname|node|vmid)\}\}/g, (_m, v: keyof NotesVariables) => String(vars[v] ?? ""));
}

/** A template that renders to exactly `notes` (used to show notes changed outside as drift). */
export function templateFor(notes: string): string {
  return notes.replace(/\\/g, "\\\\").replace(/\r?\n/g, "\\n");
}

export function usesVariable(template: string, name: keyof NotesVariables): boolean {
  return template.includes(`{{${name}}}`);
}
