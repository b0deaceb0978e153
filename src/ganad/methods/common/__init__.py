"""Code several methods are built on: DCGAN networks (`nets`), the training skeleton (`training`) with its
checkpoints and curves (`training_run`), the BiGAN family (`bigan`) and the feature baselines (`features`).
A method's package imports from here, never from another method's package."""
