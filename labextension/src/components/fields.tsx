/**
 * Form fields the panels share: a labelled text or number input and a select of plain
 * names. Each keeps the exact markup the panels had (JupyterLab's `jp-mod-styled` look,
 * the label wrapping the control so `get_by_label` finds it).
 */
import React from 'react';

/** A labelled one-line text input. */
export function TextField(props: {
  label: React.ReactNode;
  value: string;
  onChange: (value: string) => void;
  placeholder?: string;
  name?: string;
  inputMode?: React.HTMLAttributes<HTMLInputElement>['inputMode'];
}): JSX.Element {
  return (
    <label>
      {props.label}
      <input
        className="jp-mod-styled"
        value={props.value}
        placeholder={props.placeholder}
        inputMode={props.inputMode}
        onChange={e => props.onChange(e.target.value)}
        name={props.name}
      />
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
    <label title={props.title}>
      {props.label}
      <input
        className="jp-mod-styled"
        type="number"
        min={props.min}
        value={props.value}
        onChange={e => props.onChange(parseInt(e.target.value || String(props.min), 10))}
        name={props.name}
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
    <select
      className={props.className}
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
    </select>
  );
}
