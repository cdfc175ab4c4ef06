"""Target-model building (installed as `vidsme.train`).

  tiny_model  the tiny offline VULLM (LlavaOnevision: Qwen2 LM + SigLIP tower) and its tokenizer
  families    module groups (vision tower | projector | language model) per model family
  config      typed configs of `vidsme train base` / `vidsme train target`
  data        manifest rows -> token ids, answer-only labels, frames
  loop        the one DeepSpeed training loop (strategies: full | lora | projector)
  recipes     thin recipes writing a model directory + its card (target.json / base.json)
"""
