"""The pipeline's jobs: training and scoring one class with one seed (`jobs`), for the image benchmark and the
studies alike, and the code digests that tell DVC which code each stage runs (`code`)."""
