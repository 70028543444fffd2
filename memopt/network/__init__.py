"""Reading a network: where it comes from and loading it at a size (``source``), its tensor layout
(``layout``), custom layers it may carry (``layers``), Keras 3 files carried over to tf_keras
(``keras3``), every derived model checked against its source (``check``), what its graph says (``graph``: non-local
operations, MACs, params), what probing it says (``probe``: receptive field, alignment), which
channels go together (``channels``), its split at global reductions (``context``, with the values'
description in ``values``), training it on memopt's data (``adapter``), the study's record of it
(``report``), ``memopt inspect`` (``inspect``), and memopt's stand-in U-Net (``unet``)."""
