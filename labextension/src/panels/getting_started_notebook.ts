/**
 * The example notebook of the sidebar's Getting started section: a tiny classifier on CPU (a few
 * seconds) logged with MLflow 3's standard calls. Kept apart from the section (no lab imports)
 * so unit tests read it.
 */

function source(text: string): string[] {
  const lines = text.split('\n');
  return lines.map((l, i) => (i < lines.length - 1 ? l + '\n' : l));
}

/** The notebook, naming where the shared dataset is mounted (`datasetPath`). */
export function exampleNotebook(datasetPath: string): object {
  const intro = `# Your first run

This notebook trains a small classifier on synthetic data (a few seconds on CPU) and logs it to
MLflow: its parameters, a metric and the model. Run it (Shift+Enter); the run then appears in
the **Experiments** section of the MLOps sidebar, and MLflow prints a link to it.

The lab's shared cell-image dataset is mounted read-only at \`${datasetPath || '~/datasets'}\`
(\`~/datasets\` in your workspace): swap the synthetic data for features of those images when
you are ready.`;
  const code = `import os

import mlflow
import mlflow.sklearn
import sklearn
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

if not os.environ.get("MLFLOW_RUN_ID"):  # as a job, the platform has opened the run already
    mlflow.set_experiment(f"{os.environ.get('JUPYTERHUB_USER', 'my')}-getting-started")

params = {"C": 1.0, "max_iter": 200}
X, y = make_classification(n_samples=400, n_features=8, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)

with mlflow.start_run(run_name="first-run"):
    mlflow.log_params(params)
    clf = LogisticRegression(**params).fit(X_train, y_train)
    mlflow.log_metric("accuracy", clf.score(X_test, y_test))
    # the requirement named here spares MLflow inferring it (a subprocess, many seconds)
    mlflow.sklearn.log_model(
        clf,
        name="model",
        input_example=X_test[:2],
        pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
    )`;
  return {
    cells: [
      { cell_type: 'markdown', metadata: {}, source: source(intro) },
      { cell_type: 'code', metadata: {}, execution_count: null, outputs: [], source: source(code) }
    ],
    metadata: {
      kernelspec: { display_name: 'Python 3 (ipykernel)', language: 'python', name: 'python3' },
      language_info: { name: 'python' }
    },
    nbformat: 4,
    nbformat_minor: 5
  };
}
