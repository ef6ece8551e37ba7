/**
 * Form fields the panels share: a labelled text or number input and a select of plain
 * names. Each keeps the exact markup the panels had (JupyterLab's `jp-mod-styled` look,
 * the label wrapping the control so `get_by_label` finds it).
 */
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
    <label>
      {props.label}
      {props.rows ? (
        <textarea
          className="jp-mod-styled jp-mlops-yaml"
          rows={props.rows}
          value={props.value}
          onChange={onChange}
        />
      ) : (
        <input
          className="jp-mod-styled"
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
        <label key={k} className={props.className}>
          <input
            type="checkbox"
            checked={chosen.includes(k)}
            onChange={() =>
              props.onChange(chosen.includes(k) ? chosen.filter(c => c !== k) : [...chosen, k])
            }
          />
          {k}
        </label>
      ))}
    </>
  );
}
