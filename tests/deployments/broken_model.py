"""A model version that cannot load: its load_context fails like a corrupt weights file."""
import mlflow
from mlflow.pyfunc import PythonModel


class CorruptWeights(PythonModel):
    def load_context(self, context):
        raise RuntimeError("weights file is corrupt (test model that never loads)")

    def predict(self, context, model_input, params=None):
        return model_input


mlflow.models.set_model(CorruptWeights())
