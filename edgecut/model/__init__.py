"""Making the model: everything between a checkpoint and a fine-tuned slim classifier in torch. Loading a local
directory, GGUF file, hub id or alias (load); the labelled data, its seeded splits and the prompts built identically
for training and serving (data, prompt); choosing and keeping N decoder layers (select, prune, cut); the
classification head from the label words' LM-head rows (classifier); trimming the embedding table to the ids a task
uses (vocab); and fine-tuning, with an artifact as teacher or without (finetune, distill). Nothing here writes ONNX:
`edgecut.pipeline` calls these stages in order and hands the model to `edgecut.graph`.
"""
