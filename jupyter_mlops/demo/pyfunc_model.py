"""The file MLflow logs as the detector's "model from code" (no pickled Python objects in the
registry): loading the model runs this file, which names the model class."""
import mlflow

from jupyter_mlops.demo.pyfunc import CellDetectorModel

mlflow.models.set_model(CellDetectorModel())
