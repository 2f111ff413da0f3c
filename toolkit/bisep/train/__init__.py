"""Training: the separator's Lightning module and data module, and mini_clap's trainer."""
