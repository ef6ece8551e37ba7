/**
 * Reference projects the server extension can copy into the workspace.
 */
import { jsonBody, requestAPI } from './request';

/** A template the server extension offers (`GET mlops/api/template`). */
export interface ITemplate {
  name: string;
  title: string;
  description: string;
  /** The folder the UI proposes. */
  default_dest: string;
  /** The file to open after copying, relative to the copy. */
  open: string;
}

/** Answer of `POST mlops/api/template`; paths relative to the workspace. */
export interface ICopiedTemplate {
  template: string;
  path: string;
  files: string[];
  /** The README of the copy. */
  open: string;
}

/** The templates on offer. */
export function listTemplates(): Promise<{ templates: ITemplate[] }> {
  return requestAPI('template');
}

/** Copy template `template` to the workspace folder `dest`. */
export function copyTemplate(template: string, dest: string): Promise<ICopiedTemplate> {
  return requestAPI('template', jsonBody('POST', { template, dest }));
}
