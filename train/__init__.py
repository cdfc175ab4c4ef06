"""Target-model building (installed as `vidsme.train`).

What lands here (issue 4): the tiny offline VULLM builder, base pretraining, and
fine-tuning on member sets with strategy full | lora | projector through DeepSpeed.
Nothing is implemented yet; see docs/ARCHITECTURE.md for the plan and status.
"""
