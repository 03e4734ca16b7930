"""jaxspatial studio: one browser page for every spatial edit of the library.

    python -m jaxspatial.studio --checkpoint runs/demo --checkpoint runs/sgan [--port 7860]

The page adapts to each loaded model's kind: latents and DragGAN points for StyleGAN2,
heatmap centres (and DragGAN with the coarse centre move) for SpatialGAN, block resampling
for SSN (each of the three also on an uploaded photo, projected into the model), brushed
collages and finetuning for the latent regressor. ``engines`` holds what each
kind can do (on the library's public API), ``sessions`` the per-tab histories, ``ops`` the
request checks, ``server`` the HTTP routes; ``static/`` is the page itself (plain HTML, CSS
and JavaScript: no CDN, no build step).
"""

from jaxspatial.studio.engines import Engine, State, load_engine
from jaxspatial.studio.server import Studio, create_app
from jaxspatial.studio.sessions import Session, SessionStore

__all__ = ["Engine", "Session", "SessionStore", "State", "Studio", "create_app", "load_engine"]
