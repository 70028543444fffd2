"""Studies: a recipe (``recipe``) run stage by stage (``experiment``, one ``variant_worker`` process
per variant), quality against ground truth (``evaluate``), the rows of a .tflite-only baseline
(``tflite_baseline``), the result files (``results``), the
table and plots (``report``), the pick and its card (``pick``), held-out quality (``crossval``),
size x quantization grids (``grid``) and tile autotuning (``autotune``)."""
