"""Everything that runs a .tflite, without TensorFlow (numpy, OpenCV and LiteRT only).

``runtime`` (LiteRT and its XNNPACK settings), ``embed`` (the layout inside the .tflite),
``predict`` (peak memory from the flatbuffer), ``quantize`` (a float .tflite quantized by AI
Edge Quantizer), ``runner`` (any model through its layout),
``tiling`` / ``splitting`` / ``context`` (windows, lower-resolution pieces, global values over the
frame), ``enhance``, ``bench`` / ``bench_worker`` / ``pipeline_worker`` (host measurements) and
``device`` (phones through adb). Importing TensorFlow costs ~900 MB of RSS, so no module here
imports it: tests/test_architecture.py holds that line.
"""
