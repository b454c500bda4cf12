"""The pipeline's stages, one small function over `PipelineState` each (see `attndeploy.pipeline`)."""
