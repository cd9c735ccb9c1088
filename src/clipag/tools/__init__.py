"""Existing CLIP-guided tools that take any guide: CLIPDraw (draw, raster), VQGAN+CLIP (vqgan, vqgan_model)
and CLIPStyler (style)."""
