"""What runs stages and keeps their files: paths (`layout`), model files (`store`), score tables (`score_files`),
devices (`device`), job executors (`executors`), the stage entry point (`stage`) and kept runs (`keep`)."""
