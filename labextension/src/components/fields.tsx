/**
 * Form fields the panels share, built on JupyterLab's own controls (`InputGroup`,
 * `HTMLSelect`, the `jp-mod-styled` checkbox) so they follow the light and dark themes. A
 * label wraps each control, so `get_by_label` finds it; in the narrow sidebar a field takes
 * its row's width and shrinks with it instead of overflowing (style/base.css).
 */
import { HTMLSelect, InputGroup } from '@jupyterlab/ui-components';
import React from 'react';

/** A labelled text input; with `rows`, a YAML text area of that many rows instead. */
export function TextField(props: {
  label: React.ReactNode;
  value: string;
  onChange: (value: string) => void;
  placeholder?: string;
  name?: string;
  inputMode?: React.HTMLAttributes<HTMLInputElement>['inputMode'];
  rows?: number;
}): JSX.Element {
  const onChange = (e: React.ChangeEvent<HTMLInputElement | HTMLTextAreaElement>) =>
    props.onChange(e.target.value);
  return (
    <label className="jp-mlops-field">
      <span className="jp-mlops-field-label">{props.label}</span>
      {props.rows ? (
        <textarea
          className="jp-mod-styled jp-mlops-yaml"
          rows={props.rows}
          value={props.value}
          onChange={onChange}
        />
      ) : (
        <InputGroup
          className="jp-mlops-input-group"
          value={props.value}
          placeholder={props.placeholder}
          inputMode={props.inputMode}
          onChange={onChange}
          name={props.name}
        />
      )}
    </label>
  );
}

/** A labelled whole-number input; an emptied field counts as its minimum. */
export function NumberField(props: {
  label: React.ReactNode;
  value: number;
  min: number;
  onChange: (value: number) => void;
  name?: string;
  title?: string;
}): JSX.Element {
  return (
    <label className="jp-mlops-field" title={props.title}>
      <span className="jp-mlops-field-label">{props.label}</span>
      <InputGroup
        className="jp-mlops-input-group"
        type="number"
        min={props.min}
        value={props.value}
        onChange={e => props.onChange(parseInt(e.target.value || String(props.min), 10))}
        name={props.name}
      />
    </label>
  );
}

/** A labelled select of fixed choices (`options`: value and text of each). */
export function SelectField(props: {
  label: React.ReactNode;
  value: string;
  options: { value: string; label: string }[];
  onChange: (value: string) => void;
  name?: string;
}): JSX.Element {
  return (
    <label className="jp-mlops-field">
      <span className="jp-mlops-field-label">{props.label}</span>
      <HTMLSelect
        className="jp-mlops-select"
        value={props.value}
        options={props.options}
        name={props.name}
        onChange={e => props.onChange(e.target.value)}
      />
    </label>
  );
}

/**
 * A select of names (models, versions, projects, datasets). `describe` renders an option's
 * text when it says more than the name; `placeholder` adds a first empty choice.
 */
export function NameSelect(props: {
  label: string;
  value: string;
  options: string[];
  onChange: (value: string) => void;
  className?: string;
  placeholder?: string;
  describe?: (option: string) => React.ReactNode;
}): JSX.Element {
  return (
    <HTMLSelect
      className={`jp-mlops-select ${props.className ?? ''}`}
      aria-label={props.label}
      value={props.value}
      onChange={e => props.onChange(e.target.value)}
    >
      {props.placeholder !== undefined && <option value="">{props.placeholder}</option>}
      {props.options.map(o => (
        <option key={o} value={o}>
          {props.describe ? props.describe(o) : o}
        </option>
      ))}
    </HTMLSelect>
  );
}

/** A checkbox in JupyterLab's style with its label after it. */
export function CheckField(props: {
  label: React.ReactNode;
  checked: boolean;
  onChange: (checked: boolean) => void;
  className?: string;
  title?: string;
}): JSX.Element {
  return (
    <label className={`jp-mlops-check ${props.className ?? ''}`} title={props.title}>
      <input
        type="checkbox"
        className="jp-mod-styled"
        checked={props.checked}
        onChange={e => props.onChange(e.target.checked)}
      />
      {props.label}
    </label>
  );
}

/**
 * Checkboxes choosing a subset of `keys` (the metric or param columns of a table, the metrics
 * charted in a comparison); `onChange` gets the new subset, a new key added at the end.
 */
export function KeyChecks(props: {
  keys: string[];
  chosen: string[];
  onChange: (chosen: string[]) => void;
  className?: string;
}): JSX.Element {
  const { chosen } = props;
  return (
    <>
      {props.keys.map(k => (
        <CheckField
          key={k}
          className={props.className}
          label={k}
          checked={chosen.includes(k)}
          onChange={() =>
            props.onChange(chosen.includes(k) ? chosen.filter(c => c !== k) : [...chosen, k])
          }
        />
      ))}
    </>
  );
}
