"""The built-in synthetic dataset (``audfer synth``), apart from the real-dataset adapters in ``audfer.data``.

``renderer`` draws a face moved by the 18 AUs; ``aus`` draws clip AU time courses from an expression-AU prior
and what OpenFace would write for them; ``openface_writer`` writes OpenFace CSVs in each real layout;
``dataset`` renders a whole dataset in DFEW's layout (``generate``, ``SynthConfig``).
"""

from audfer.synth.dataset import SynthConfig, generate, render_clip, synth_settings_differ

__all__ = ["SynthConfig", "generate", "render_clip", "synth_settings_differ"]
