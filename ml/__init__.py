"""The model lab: data preparation, training, crop and scene evaluation, and the experiments
behind the shipped settings. Installed with the ``[ml]`` extra; the service (``worker``,
``api``, ``storage``) never imports it, and it imports the pipeline, never the other way."""
