"""Evaluation: read generated clips back from their pixels, and FVD with real I3D weights.

    from lumiere_jax.eval import analyze_clip, frechet_distance, fvd, I3DFeatures
    a = analyze_clip(video)            # uint8 (T, H, W, 3), T >= 4, H, W >= 16
    a.background                       # 'black' | 'gray' | 'white'
    a.objects                          # tracks, largest first, at most 2: .color .shape
                                       #   .size .direction .speed .presence .centroids (T, 2)
    a.matches(caption_or_labels)       # per-attribute bools (None: not named)
    frechet_distance(feats_a, feats_b) # (N, D), (M, D) -> float
    fvd(videos_a, videos_b)            # uint8 (N, T, H, W, 3) each, T >= 9 -> float

Modules: `captions` (parse / normalize moving_shapes captions and labels), `analyzer`,
`frechet`, `i3d` (the network and its safely unpickled weights), `fvd`, `cascade` (the
SSR against its base video: PSNR, seam ratio), `scoring` (accuracy tables over many
clips), `contact_sheet` (a PNG of clips with their readings).
"""

from lumiere_jax.eval.analyzer import (AnalyzerConfig, ClipAnalysis, Track, analyze_clip,
                                       check_video)
from lumiere_jax.eval.captions import (format_caption, normalize_labels, parse_caption,
                                       short_caption)
from lumiere_jax.eval.frechet import frechet_distance
from lumiere_jax.eval.fvd import I3DFeatures, fvd

__all__ = ["AnalyzerConfig", "ClipAnalysis", "I3DFeatures", "Track", "analyze_clip",
           "check_video", "format_caption", "frechet_distance", "fvd", "normalize_labels",
           "parse_caption", "short_caption"]
