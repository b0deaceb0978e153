"""ganad: GAN-based image anomaly detection, reproduced end to end.

Packages by role, each importing only from those before it in this list:

- `errors`, `files`, `schema`: the errors raised on purpose; writing files atomically and reading stage
  intermediates (npz, npy, JSON, CSV) with one message per fault; params validation;
- `data`: dataset sources, image folders, prepared images, evaluation protocols;
- `runtime`: paths, model files, score tables, devices, executors, the stage entry point;
- `methods`: the registry, the method interface and configs, `common` (networks, the
  training skeleton, BiGAN, feature baselines) and one package per method;
- `config`: params.yaml, every section checked;
- `engine`: training and scoring jobs, and the code digests of the stages;
- `evaluation`: metrics, tables, figures, the papers' numbers;
- `studies`: ranking folders of images, brain MRI;
- `demos`: offline demo data.
"""

__version__ = "0.1.0"
