"""Images in: where datasets come from (`sources`, `folders`), the prepared 32x32 images (`images`), and the
evaluation protocols that split them (`protocols`)."""
