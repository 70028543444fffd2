"""Frames and scenes: YUV 4:2:0 I/O (``yuv``), the packed model tensor (``contract``), scene folders
and their checks (``data``), synthetic bursts (``synth``) and a study's scenes at its frame size
(``scenes``). numpy and OpenCV only: the runtime side reads frames through here too."""
