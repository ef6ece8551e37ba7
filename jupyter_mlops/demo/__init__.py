"""The cell-detection reference project (docs/cell-detection.md).

``cells`` seeded synthetic microscopy, ``publish`` it as a shared dataset, ``loaders`` images
and boxes (COCO, masks, CSV), ``detector``/``training`` the model in plain torch, ``metrics``
and ``evaluation`` mAP and the artifacts the Experiments panel compares, ``pyfunc`` the served
model, ``project`` the glue of the template's steps, ``template`` the files a user copies.
torch is imported only by ``detector``, ``training`` and the served model, never on import of
this package.
"""
