"""The smallest models the tests train and attack (one definition, imported by the test modules).

pytest puts tests/ on sys.path (there is no tests/__init__.py), so a test imports these as
`from tiny_configs import TINY`.
"""
from __future__ import annotations

from vidsme.train.tiny_model import TinyVullmConfig

# one LM layer of width 32, one vision layer, 32 px frames in 8 px patches: seconds to build and train
TINY = TinyVullmConfig(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=1, vision_hidden_size=32,
                       vision_intermediate_size=64, vision_layers=1, vision_heads=2, image_size=32, patch_size=8)

# the same model as `vidsme challenge build --set` overrides, one epoch, one frame count:
# a size-6 challenge builds in about 20 s
CHALLENGE_TINY: tuple[str, ...] = (
    "base.model.vocab_size=400", "base.model.hidden_size=32", "base.model.intermediate_size=64",
    "base.model.num_hidden_layers=1", "base.model.num_attention_heads=2", "base.model.num_key_value_heads=1",
    "base.model.vision_hidden_size=32", "base.model.vision_intermediate_size=64", "base.model.vision_layers=1",
    "base.model.vision_heads=2", "base.model.image_size=32", "base.model.patch_size=8",
    "base.optim.epochs=1", "base.optim.micro_batch_size=4", "base.data.max_text_tokens=400",
    "targets.data.max_text_tokens=400", "targets.optim.epochs=1", "targets.optim.micro_batch_size=2",
    "suite.frame_counts=[4]",
)
