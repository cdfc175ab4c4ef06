"""Built-in calibrations, one family per file (LiRA, RMIA): importing a module registers its variants."""
