"""Defaults of the classifier shared by the estimator and the run's options.

Declared once, here, in a module that imports nothing, so building the command
line imports neither scikit-learn nor torch.
"""

#: "auto" (the CNN when torch is installed and every class has
#: :data:`MIN_CNN_EXAMPLES`), "cnn" or "features".
MODEL = "auto"
MODELS = ("auto", "cnn", "features")
#: Fewest labelled examples of every class for ``model="auto"`` to take the CNN.
MIN_CNN_EXAMPLES = 50
#: Fewest labelled examples of any class the classifier is trained on at all.
MIN_EXAMPLES = 10
#: Side of the cutouts classified in a survey, pixels (odd).
CUTOUT_SIZE = 63
#: Fraction of the labelled sources held out to evaluate the published model.
TEST_FRACTION = 0.25
#: Upper bound of CNN epochs (early stopping ends sooner).
EPOCHS = 60
#: Side the CNN resamples every cutout to, pixels.
INPUT_SIZE = 64
#: The extra that installs the CNN's dependency.
CNN_EXTRA = 'pip install "galclust[cnn]"  (the CPU build torch==2.13.0)'
#: The CNN's network; part of a stored model's key, so a run retrains once when it changes.
NETWORK = "centred-resnet-2"
