"""``zoo demo``: see and share a model in a browser (a Gradio app), or export it as a
Hugging Face Space.

The page offers a sample grid by seed and count with the controls the family's sampling
options declare (:mod:`zoo.demo.controls`), the sampler's stages, interpolation between
two seeds, the model card's numbers and figures, image and mask uploads for families
that take an input, and for a folder of runs a gallery of every model. Everything it
shows goes through the public model API (:mod:`zoo.demo.actions`), so its grid for a
seed is the grid ``zoo sample`` writes.

A Space's ``app.py`` (:func:`export_space`) is::

    from zoo.demo import serve
    serve("me/model")

Gradio is an optional extra (``pip install 'genzoo[demo]'``), imported only by
:mod:`zoo.demo.page` when a page is built; importing this package imports neither
Gradio nor torch.
"""

from zoo.demo.actions import MAX_COUNT
from zoo.demo.serve import app, launch, load_models, require_gradio, serve
from zoo.demo.space import export_space

__all__ = ["MAX_COUNT", "app", "export_space", "launch", "load_models", "require_gradio",
           "serve"]
