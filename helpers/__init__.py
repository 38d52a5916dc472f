"""Shared code of the PyTorch workflow notebooks: one module per concept, imported by name.

``import helpers`` loads nothing else (no torch, no device touched); a notebook imports what
it needs from the module that holds it, for example ``from helpers.engine import fit``.

=============  ====================================================================
module         what it holds (the notebook that introduces it)
=============  ====================================================================
device         choosing a device, waiting for it, seeds and random state (00, 06)
params         checking notebook parameters and command-line options (00, 10)
paths          where runs and data go (00)
records        headline values that tests and ``make run`` read back (00)
data           tensors in memory: generated sets, digits, splits, loaders (01)
plots          figures from data: predictions, curves, image grids, results (01)
models         LinearRegression, MLP, TinyVGG, build_model (02)
engine         the training loop: train_one_epoch, evaluate, fit, predict (03)
tables         plain-text tables (03)
metrics        accuracy, torchmetrics collections, confident mistakes (04)
tracking       experiment names, TensorBoard logging, results tables (05)
atomic         writing files atomically, with the user's usual permissions (06)
checkpoint     saving and loading weights and checkpoints safely, exact resume (06)
vision         image data sets: by name as tensors, and class folders on disk (07, 08)
shapes         the generated shapes image folders (07, 08)
staging        generated folders, replaced whole and never over your files (05, 07, 08)
downloads      the only code that may use the network: online data sets, weights (07, 09)
compare        training and timing several models side by side (07)
transfer       pretrained models, a new last layer, freezing (09)
train          the command-line training script, one process or many (10)
distributed    the shares of each process under torchrun (10)
series         running the notebooks with papermill (``make run``)
=============  ====================================================================
"""
