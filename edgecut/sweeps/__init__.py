"""Sweeps: the paper's question for a user's task, the smallest N that is good enough. One export per (N, seed),
resumable and shardable (sweep); the same cells as Ray tasks on a local Ray or a cluster (sweep_ray); the per-N
summary and its JSON, Markdown and plot (sweep_report); and what a user would pick instead of a cut LLM, measured on
the same split, which every export and sweep reports beside the model (baselines).
"""
