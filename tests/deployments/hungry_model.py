"""A model version whose loading takes far more memory than its server may use."""
import mlflow
from mlflow.pyfunc import PythonModel


class Hungry(PythonModel):
    def load_context(self, context):
        self.weights = bytearray(600 * 2**20)
        self.weights[::4096] = b"x" * len(self.weights[::4096])

    def predict(self, context, model_input, params=None):
        return model_input


mlflow.models.set_model(Hungry())
