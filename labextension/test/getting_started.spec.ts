import { describe, expect, it } from 'vitest';

import { exampleNotebook } from '../src/panels/getting_started_notebook';

describe('exampleNotebook', () => {
  it('is an nbformat 4 notebook logging with MLflow 3 standard calls', () => {
    const nb: any = exampleNotebook('/data/datasets');
    expect(nb.nbformat).toBe(4);
    const code = nb.cells.filter((c: any) => c.cell_type === 'code');
    expect(code).toHaveLength(1);
    const source = code[0].source.join('');
    for (const call of ['mlflow.start_run(', 'mlflow.log_params(', 'mlflow.log_metric(']) {
      expect(source).toContain(call);
    }
    expect(source).toMatch(/mlflow\.sklearn\.log_model\(\s*clf,\s*name="model"/);
    expect(nb.cells[0].source.join('')).toContain('/data/datasets');
  });
});
